"""One exception type for user-facing errors, so the CLI can print one clear line instead of a traceback; and the
exit code of a run the user interrupted."""

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class FumeEdgeError(Exception):
    """A user error (bad file, bad field, missing device) with a one-line message that says what to do."""
