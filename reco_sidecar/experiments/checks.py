"""What the server adds to the file's own validation: every arm must name a model this
sidecar serves, and a pinned version must be a complete version of it. Checked in the
supervisor before any worker sees the file."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Collection
from dataclasses import dataclass

from reco_sidecar.experiments.config import ExperimentFileError, ExperimentSet, parse, read_text, syntax_of


@dataclass(frozen=True)
class ExperimentsFile:
    """A validated file: its text (what workers are sent and parse again), syntax and content."""

    text: str
    syntax: str
    experiments: ExperimentSet

    @classmethod
    def empty(cls) -> ExperimentsFile:
        return cls("", "json", ExperimentSet())


def check_served(experiments: ExperimentSet, models: Collection[str],
                 versions_of: Callable[[str], Collection[int]] | None = None) -> None:
    """Raises ExperimentFileError naming the arm's field when it cannot be served: its model
    is not served here, or the version it pins is not a complete version of that model.
    (Whether the pinned version's files pass their checksums is found by the workers, which
    verify every file they map.)"""
    for i, experiment in enumerate(experiments.experiments):
        for j, arm in enumerate(experiment.arms):
            where = f"experiments[{i}].arms[{j}]"
            if arm.model is not None and arm.model not in models:
                raise ExperimentFileError(f"model {arm.model!r} is not served here (served: "
                                          f"{', '.join(sorted(models))})", field=f"{where}.model")
            if (arm.model is not None and arm.version is not None and versions_of is not None
                    and arm.version not in versions_of(arm.model)):
                raise ExperimentFileError(f"model {arm.model!r} has no complete version {arm.version}",
                                          field=f"{where}.version")


def arm_field(experiments: ExperimentSet, model: str, version: int) -> str:
    """The field of the first arm pinning (model, version), for an error about it."""
    for i, experiment in enumerate(experiments.experiments):
        for j, arm in enumerate(experiment.arms):
            if arm.model == model and arm.version == version:
                return f"experiments[{i}].arms[{j}].version"
    return "experiments"


def arm_versions(experiments: ExperimentSet) -> list[tuple[str, int]]:
    """Every (model, version) an arm pins, once each, in file order."""
    out: dict[tuple[str, int], None] = {}
    for experiment in experiments.experiments:
        for arm in experiment.arms:
            if arm.model is not None and arm.version is not None:
                out[(arm.model, arm.version)] = None
    return list(out)


def read_checked(path: pathlib.Path, models: Collection[str],
                 versions_of: Callable[[str], Collection[int]] | None = None) -> ExperimentsFile:
    """Reads the file once (the text checked is the text sent to workers) and validates it."""
    text = read_text(path)
    syntax = syntax_of(path)
    experiments = parse(text, syntax, source=str(path))
    check_served(experiments, models, versions_of)
    return ExperimentsFile(text, syntax, experiments)


def parse_sent(text: str, syntax: str) -> ExperimentSet:
    """A worker's parse of what the supervisor validated."""
    return parse(text, syntax) if text else ExperimentSet()
