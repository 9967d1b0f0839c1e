"""The one exception type every layer raises for problems a user can understand and fix."""

from __future__ import annotations


class UserError(Exception):
    """A failure with a one-sentence ``message`` (what happened) and a ``hint`` (what to do).

    ``str()`` gives both as one line, ready for a terminal, FAILED.txt or STATUS.txt.
    ``code`` is a short machine-readable name (``"out_of_credits"``, ``"1001"`` …) for result.json.
    """

    code: str = "error"

    def __init__(self, message: str, hint: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message.rstrip(".")
        self.hint = hint.rstrip(".")
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}." if self.hint else f"{self.message}."


class UsageError(UserError):
    """A command asked for something that cannot be done as asked (an unknown job, a job that did not
    fail, a second daemon on one state folder): the commands exit 2 for it, as for bad config."""
