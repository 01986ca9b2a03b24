"""Domain errors. The service layer alone turns them into gRPC status codes."""

from __future__ import annotations

import enum


class RecoError(Exception):
    """Base of every error a request can cause; `field` names the offending request field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


# A client's value quoted in an error message is cut to this many characters: a message
# travels in a trailer, and past about 8 KiB a default client refuses the trailer itself
# (RESOURCE_EXHAUSTED instead of the code that says what was wrong).
ECHO_CHARS = 80


def echo(value: str) -> str:
    """`value` as an error message quotes it: repr, cut to ECHO_CHARS characters."""
    if len(value) <= ECHO_CHARS:
        return repr(value)
    return f"{value[:ECHO_CHARS]!r}... ({len(value)} characters)"


class InvalidArgument(RecoError):
    pass


class NotFound(RecoError):
    pass


class FailedPrecondition(RecoError):
    pass


class ResourceExhausted(RecoError):
    pass


class Unavailable(RecoError):
    pass


class ErrorKind(enum.Enum):
    """What went wrong, as it crosses a process boundary; serving maps kinds to status codes."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"

    def error(self, message: str, field: str | None = None) -> RecoError:
        return _CLASS_OF[self](message, field=field)


_CLASS_OF: dict[ErrorKind, type[RecoError]] = {
    ErrorKind.INVALID_ARGUMENT: InvalidArgument,
    ErrorKind.NOT_FOUND: NotFound,
    ErrorKind.FAILED_PRECONDITION: FailedPrecondition,
    ErrorKind.RESOURCE_EXHAUSTED: ResourceExhausted,
    ErrorKind.UNAVAILABLE: Unavailable,
}


class ArtifactError(Exception):
    """A model directory that must not be served; the message says what is wrong and where."""

    def __init__(self, path: object, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = message


class PortInUse(Exception):
    """A port another server already listens on (the gRPC port or the metrics port)."""
