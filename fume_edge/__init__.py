"""fume-edge: train, export and run FUME gas-imaging models on edge devices."""

__version__ = "0.1.0"
