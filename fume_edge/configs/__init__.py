"""Packaged default configurations (YAML)."""
