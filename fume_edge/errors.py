"""One exception type for user-facing errors, so the CLI can print one clear line instead of a traceback."""


class FumeEdgeError(Exception):
    """A user error (bad file, bad field, missing device) with a one-line message that says what to do."""
