"""`reco-sidecar serve`: the worker pool serving one model."""

from __future__ import annotations

import argparse
import pathlib
import sys

from reco_sidecar import settings
from reco_sidecar.artifact import source
from reco_sidecar.common import logs
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.runtime import verification
from reco_sidecar.runtime.exit_codes import ExitCode

log = logs.get(__name__)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over gRPC with a pool of worker processes",
        description="Serve recommendations over gRPC. Every option can also be set with the "
        "environment variable shown beside it; a flag wins over its variable. Exit codes: "
        + ", ".join(f"{c.value} {c.name}" for c in ExitCode),
    )
    settings.add_serve_arguments(p)
    p.set_defaults(run=run)


def _fail(code: ExitCode, message: str) -> int:
    log.error("serve_failed", error=message, code=int(code))
    print(f"reco-sidecar serve: {message}", file=sys.stderr)
    return code


def _model_name(root: pathlib.Path, requested: str | None) -> str:
    if requested:
        return requested
    models = source.list_models(root)
    if len(models) != 1:
        raise ValueError(f"--model is needed: {root} holds {len(models)} models ({', '.join(models) or 'none'})")
    return models[0]


def initial_version(s: settings.ServeSettings) -> int:
    """The version to serve first, verified; with 'latest', the newest that verifies."""
    model_dir = s.model_root / s.model
    verdict = verification.resolve(model_dir, s.version_spec)
    for version, reason in verdict.bad:
        log.warning("version_skipped", version=version, error=reason)
    if isinstance(verdict, verification.Refused):
        raise ArtifactError(model_dir, verdict.message)
    return verdict.version


def run(args: argparse.Namespace) -> int:
    from reco_sidecar.runtime.supervisor import Supervisor

    try:
        if args.model_store and not args.model:
            raise ValueError("--model is needed with --model-store")
        s = settings.from_args(args, _model_name(args.model_root, args.model))
    except ValueError as e:
        return _fail(ExitCode.CONFIG, str(e))
    if s.model_store is not None:
        from reco_sidecar.runtime import store_start

        try:
            link, version = store_start.start(s)
        except (ArtifactError, RuntimeError, TimeoutError) as e:
            return _fail(ExitCode.NO_MODEL, str(e))
        return Supervisor(s, version, store=link).run()
    try:
        version = initial_version(s)
    except ArtifactError as e:
        return _fail(ExitCode.NO_MODEL, str(e))
    return Supervisor(s, version).run()
