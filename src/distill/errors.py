"""One exception type for every problem a user can fix.

The CLI turns a `DistillError` into a one-line message and exit code 2, so bad input never shows a traceback.
Anything else that escapes is a bug in distill, and is allowed to show one.
"""


class DistillError(Exception):
    """A problem with the user's input, files or environment, explained in one line."""
