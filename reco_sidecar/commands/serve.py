"""`reco-sidecar serve`: checks the settings and the first version of every model, then runs
the supervisor (runtime/supervisor/) that serves them with a pool of workers."""

from __future__ import annotations

import argparse
import pathlib
import sys

from reco_sidecar import settings
from reco_sidecar.artifact import loader, version_choice, version_dirs
from reco_sidecar.common import logs
from reco_sidecar.common.errors import ArtifactError, RecoError
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.experiments import checks
from reco_sidecar.ranking import rules as rules_file
from reco_sidecar.ranking.rules import RulesFile

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


def _model_names(root: pathlib.Path, requested: tuple[str, ...] | None, default: str | None
                 ) -> tuple[tuple[str, ...], str]:
    """The models to serve and the default one: every --model, or every model under the root."""
    if requested:
        models = tuple(requested)
    else:
        found, skipped = version_dirs.discover_models(root)
        for name, reason in skipped:
            log.warning("model_skipped", name=name, reason=reason)
        models = tuple(found)
    if not models:
        raise ValueError(f"--model is needed: {root} holds no models")
    if default:
        return models, default
    if requested or len(models) == 1:
        return models, models[0]
    raise ValueError(f"--default-model is needed: {root} holds {len(models)} models ({', '.join(models)})")


def initial_version(s: settings.ServeSettings, model: str | None = None) -> tuple[int, dict[int, str]]:
    """The version of `model` (default: the default model) to serve first, verified (with
    'latest', the newest that verifies), and the versions found bad on the way, with why."""
    name = model or s.default_model
    model_dir = s.model_root / name
    verdict = version_choice.choose_version(model_dir, s.version_spec)
    for version, reason in verdict.bad:
        log.warning("version_skipped", model=name, version=version, error=reason)
    if isinstance(verdict, version_choice.NoVersion):
        raise ArtifactError(model_dir, verdict.message)
    return verdict.version, dict(verdict.bad)


def _experiments(s: settings.ServeSettings) -> checks.ExperimentsFile:
    """The experiments file, validated against the models served; ValueError naming the field."""
    if s.experiments is None:
        return checks.ExperimentsFile.empty()
    try:
        loaded = checks.read_checked(s.experiments, s.model,
                                     lambda name: version_dirs.list_versions(s.model_root / name))
    except RecoError as e:
        raise ValueError(f"--experiments: {e}") from None
    # Every worker opens the versions arms pin when it boots: check them once here (the
    # workers inherit the hashes), so a bad one stops serve with the field, not a boot loop.
    for model, version in checks.arm_versions(loaded.experiments):
        try:
            loader.verify(version_dirs.version_dir(s.model_root, model, version))
        except Exception as e:  # whatever an odd file makes the checks raise
            where = checks.arm_field(loaded.experiments, model, version)
            raise ValueError(f"--experiments: {where}: version {version} of model {model!r} cannot be "
                             f"served: {e}") from None
    return loaded


def _rules(s: settings.ServeSettings) -> RulesFile | None:
    """The ranking rules file, validated; ValueError naming the field."""
    if s.rules is None:
        return None
    try:
        return rules_file.load(s.rules)
    except RecoError as e:
        raise ValueError(f"--rules: {e}") from None


def run(args: argparse.Namespace) -> int:
    from reco_sidecar.runtime.supervisor.loop import Supervisor

    try:
        if args.model_store and not args.model:
            raise ValueError("--model is needed with --model-store")
        s = settings.from_args(args, *_model_names(args.model_root, args.model, args.default_model))
        experiments = _experiments(s)
        rules = _rules(s)
    except ValueError as e:
        return _fail(ExitCode.CONFIG, str(e))
    if s.model_store is not None:
        from reco_sidecar.runtime.supervisor import store_start

        try:
            link, version = store_start.start(s)
        except (ArtifactError, RuntimeError, TimeoutError) as e:
            return _fail(ExitCode.NO_MODEL, str(e))
        return Supervisor(s, {s.default_model: version}, store=link, experiments=experiments, rules=rules).run()
    try:
        initial = {name: initial_version(s, name) for name in s.model}
    except ArtifactError as e:
        return _fail(ExitCode.NO_MODEL, str(e))
    return Supervisor(s, {name: v for name, (v, _) in initial.items()}, experiments=experiments,
                      failed={name: bad for name, (_, bad) in initial.items()}, rules=rules).run()
