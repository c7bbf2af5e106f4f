"""Errors that mean "the user asked for something that cannot be done".

The CLI prints these as one line (no traceback). Everything else is a bug or
an environment failure and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a missing layer, an unknown queue scheme, a malformed file..."""


class QueueError(UserError):
    """The queue cannot be opened or used as asked."""


class UnknownTaskError(UserError):
    """A task names a function that is not in the registry."""
