"""Signed model bundles: made where the model was trained, verified, built, gated and switched on the device."""
