"""What the server adds to the file's own validation: every arm must name a model this
sidecar serves. Checked in the supervisor before any worker sees the file, so a file that
passes here is applied by every worker alike."""

from __future__ import annotations

import pathlib
from collections.abc import Collection
from dataclasses import dataclass

from reco_sidecar.experiments.config import MAX_FILE_BYTES, ExperimentFileError, ExperimentSet, parse


@dataclass(frozen=True)
class ExperimentsFile:
    """A validated file: its text (what workers are sent and parse again), syntax and content."""

    text: str
    syntax: str
    experiments: ExperimentSet

    @classmethod
    def empty(cls) -> ExperimentsFile:
        return cls("", "json", ExperimentSet())


def check_served(experiments: ExperimentSet, models: Collection[str]) -> None:
    """Raises ExperimentFileError naming the arm's field when it cannot be served."""
    for i, experiment in enumerate(experiments.experiments):
        for j, arm in enumerate(experiment.arms):
            where = f"experiments[{i}].arms[{j}]"
            if arm.model is not None and arm.model not in models:
                raise ExperimentFileError(f"model {arm.model!r} is not served here (served: "
                                          f"{', '.join(sorted(models))})", field=f"{where}.model")
            if arm.version is not None:
                # Serving a second, pinned version beside the one a model serves is not built
                # yet; `reco-sidecar evaluate` compares pinned versions offline.
                raise ExperimentFileError("a pinned version is not served yet: an arm serves the model's "
                                          "current version (pin versions in `reco-sidecar evaluate`)",
                                          field=f"{where}.version")


def read_checked(path: pathlib.Path, models: Collection[str]) -> ExperimentsFile:
    """Reads the file once (the text checked is the text sent to workers) and validates it."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ExperimentFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes", field="file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ExperimentFileError(f"{path}: cannot read: {e}", field="file") from None
    syntax = syntax_of(path)
    experiments = parse(text, syntax, source=str(path))
    check_served(experiments, models)
    return ExperimentsFile(text, syntax, experiments)


def syntax_of(path: pathlib.Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "toml"


def parse_sent(text: str, syntax: str) -> ExperimentSet:
    """A worker's parse of what the supervisor validated."""
    return parse(text, syntax) if text else ExperimentSet()
