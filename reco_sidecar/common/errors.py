"""Domain errors. The service layer alone turns them into gRPC status codes."""

from __future__ import annotations


class RecoError(Exception):
    """Base of every error a request can cause; `field` names the offending request field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


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


class ArtifactError(Exception):
    """A model directory that must not be served; the message says what is wrong and where."""

    def __init__(self, path: object, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = message


class PortInUse(Exception):
    """A port another server already listens on (the gRPC port or the metrics port)."""
