"""The experiments file as a kind of rollout (rollout.py): its messages, and its source, the
supervisor's side that reads and checks the file (I/O the pure rollout never does) and
tells the watch whether it changed."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Collection
from dataclasses import dataclass

from reco_sidecar.common.errors import FailedPrecondition, RecoError
from reco_sidecar.experiments import checks, config
from reco_sidecar.runtime import wire
from reco_sidecar.runtime.payload import PayloadDir
from reco_sidecar.runtime.supervisor.rollout import Candidate, Rollout

ExperimentsCandidate = Candidate[checks.ExperimentsFile]


@dataclass(frozen=True)
class ExperimentsKind:
    name: str = "experiments"

    def prepare(self, generation: int, file: ExperimentsCandidate, traceparent: str) -> wire.ToWorker:
        return wire.PrepareExperiments(generation, file.payload, file.content.syntax, traceparent)

    def commit(self, generation: int, traceparent: str) -> wire.ToWorker:
        return wire.CommitExperiments(generation, traceparent)

    def abort(self, generation: int) -> wire.ToWorker:
        return wire.AbortExperiments(generation)

    def replace(self, generation: int, file: ExperimentsCandidate, traceparent: str) -> wire.ToWorker:
        return wire.SetExperiments(generation, file.payload, file.content.syntax, traceparent)

    def done(self, request_id: int, generation: int, file: ExperimentsCandidate, workers: int
             ) -> wire.ExperimentsDone:
        return wire.ExperimentsDone(request_id, generation, len(file.content.experiments.experiments), workers)


def experiments_rollout(pool_size: int, timeout: float) -> Rollout[checks.ExperimentsFile]:
    return Rollout(ExperimentsKind(), pool_size, timeout)


class ExperimentsReader:
    """The experiments file on disk, as `--experiments` names it (None: not given)."""

    def __init__(self, path: pathlib.Path | None, payloads: PayloadDir) -> None:
        self.path = path
        self.payloads = payloads
        # The text of the last file refused ("" for none; None: it could not be read), so that
        # the watch reports a bad file once instead of at every poll.
        self.refused: str | None = ""
        self._offered = ""  # the text of the last file handed to the rollout

    def workers_refused(self) -> None:
        """The workers refused the file last offered (a pinned version they cannot open):
        like a file the supervisor refused, it is reported once and retried when it changes."""
        self.refused = self._offered

    def check(self, models: Collection[str], versions_of: Callable[[str], Collection[int]]
              ) -> ExperimentsCandidate | RecoError:
        if self.path is None:
            return FailedPrecondition("this sidecar was started without --experiments", "experiments")
        try:
            loaded = checks.read_checked(self.path, models, versions_of)
        except RecoError as e:
            self.refused = self._text()
            return e
        self.refused, self._offered = "", loaded.text
        return Candidate(loaded, self.payloads.write(loaded.text.encode("utf-8")))

    def changed(self, serving: checks.ExperimentsFile) -> bool:
        """Whether the file differs from what serves and from what was last refused."""
        if self.path is None:
            return False
        text = self._text()
        return text != serving.text and text != self.refused

    def _text(self) -> str | None:
        assert self.path is not None
        try:
            return config.read_text(self.path)  # bounded, and never blocks on a FIFO
        except RecoError:
            return None
