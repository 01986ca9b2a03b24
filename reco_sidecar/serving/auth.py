"""Optional bearer-token authentication (`authorization: Bearer <token>` metadata).

Tokens from --auth-tokens-file may call every Recommender method but Reload and
ReloadExperiments; tokens from --admin-tokens-file may call those too. Health and reflection stay open so that
orchestrators and tools can probe without a secret (their streams have a small limit of
their own, see handlers.py). Tokens are compared as sha256 digests
with hmac.compare_digest, against every known token, so the time taken tells neither how
much of a token matched nor which one.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable

import grpc

from reco_sidecar.common.tokens import read_tokens
from reco_sidecar.serving.names import method_path
from reco_sidecar.settings import ServeSettings

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Calls that change what every worker serves: admin tokens only.
ADMIN_METHODS = frozenset({method_path("Reload"), method_path("ReloadExperiments"), method_path("ReloadRules")})
SCHEME = "bearer"


class Role(enum.Enum):
    CALLER = "caller"
    ADMIN = "admin"


def _digest(token: str | bytes) -> bytes:
    raw = token.encode("utf-8", "surrogateescape") if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def _known(digest: bytes, known: Iterable[bytes]) -> bool:
    found = False
    for k in known:
        # No short cut: every token is compared whatever matched before.
        found |= hmac.compare_digest(digest, k)
    return found


class Authenticator:
    def __init__(self, callers: Iterable[str], admins: Iterable[str]) -> None:
        self._admins = [_digest(t) for t in admins]
        self._callers = [_digest(t) for t in callers]

    def role(self, token: str | bytes) -> Role | None:
        digest = _digest(token)
        is_admin = _known(digest, self._admins)
        is_caller = _known(digest, self._callers)
        if is_admin:
            return Role.ADMIN
        return Role.CALLER if is_caller else None

    def check(self, method: str, authorization: str | bytes | None) -> tuple[grpc.StatusCode, str] | None:
        """None when the call may proceed, else the status and message to refuse it with."""
        if method.startswith(OPEN_PREFIXES):
            return None
        if isinstance(authorization, bytes):
            authorization = authorization.decode("latin-1")
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != SCHEME or not token:
            return grpc.StatusCode.UNAUTHENTICATED, "authorization metadata with a bearer token is required"
        role = self.role(token)
        if role is None:
            return grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token"
        if method in ADMIN_METHODS and role is not Role.ADMIN:
            return grpc.StatusCode.PERMISSION_DENIED, "this method needs an admin token"
        return None


def from_settings(settings: ServeSettings) -> Authenticator | None:
    """None when no token file is configured (authentication off)."""
    if settings.auth_tokens_file is None and settings.admin_tokens_file is None:
        return None
    callers = read_tokens(settings.auth_tokens_file) if settings.auth_tokens_file else []
    admins = read_tokens(settings.admin_tokens_file) if settings.admin_tokens_file else []
    return Authenticator(callers, admins)
