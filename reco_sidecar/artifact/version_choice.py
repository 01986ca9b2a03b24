"""Which version a spec names, verified: the one rule for serve's first version, Reload,
SIGHUP and --watch. `latest` is the newest complete version that is not known bad and
passes verification; every version found bad on the way is reported with its reason.

Anything the checks raise counts as "bad version", not only ArtifactError: an odd manifest
can raise TypeError, ValueError or RecursionError, and none of them may take the
supervisor down."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass

from reco_sidecar.artifact import loader, version_dirs
from reco_sidecar.common.errors import ArtifactError, ErrorKind
from reco_sidecar.common.versions import LATEST, VersionSpec

MAX_REASON = 2000


@dataclass(frozen=True)
class Chosen:
    version: int
    bad: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class NoVersion:
    kind: ErrorKind
    message: str
    field: str | None
    bad: tuple[tuple[int, str], ...] = ()


Verdict = Chosen | NoVersion
Verify = Callable[[pathlib.Path], object]


def problem(version_dir: pathlib.Path, verify: Verify = loader.verify) -> str | None:
    """Why `version_dir` must not be served, or None if it passed every check."""
    try:
        verify(version_dir)
    except ArtifactError as e:
        return str(e)[:MAX_REASON]
    except Exception as e:  # see the module docstring; RecursionError is an Exception too
        return f"{version_dir}: {type(e).__name__}: {e}"[:MAX_REASON]
    return None


def choose_version(model_dir: pathlib.Path, spec: VersionSpec, *, known_bad: frozenset[int] = frozenset(),
            verify: Verify = loader.verify) -> Verdict:
    try:
        versions = version_dirs.list_versions(model_dir)
    except OSError as e:
        return NoVersion(ErrorKind.FAILED_PRECONDITION, f"cannot list {model_dir}: {e}", "model")
    if spec is not LATEST:
        if spec not in versions:
            return NoVersion(ErrorKind.NOT_FOUND, f"model {model_dir.name!r} has no complete version {spec}",
                           "version")
        # A number named explicitly is checked again even if it failed before: it may be fixed.
        reason = problem(model_dir / str(spec), verify)
        if reason is not None:
            return NoVersion(ErrorKind.FAILED_PRECONDITION, f"version {spec} cannot be loaded: {reason}", "version",
                           ((spec, reason),))
        return Chosen(spec)
    bad: list[tuple[int, str]] = []
    for version in reversed(versions):
        if version in known_bad:
            continue
        reason = problem(model_dir / str(version), verify)
        if reason is None:
            return Chosen(version, tuple(bad))
        bad.append((version, reason))
    if not versions:
        return NoVersion(ErrorKind.NOT_FOUND, f"model {model_dir.name!r} has no complete version", "version")
    return NoVersion(ErrorKind.FAILED_PRECONDITION,
                   f"no version of model {model_dir.name!r} passes verification"
                   + "".join(f"; version {v}: {r}" for v, r in bad), "version", tuple(bad))
