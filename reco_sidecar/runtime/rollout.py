"""Rolling out an experiments file to every worker: validated here first (nothing a worker
sees can be refused by it), then sent to every worker, and the requester answered once every
slot serves it. A worker started later is forked with the current file, so it boots serving
it. A bad file is refused naming the field, and the file being served stays."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from reco_sidecar.common.errors import ErrorKind, RecoError
from reco_sidecar.experiments import checks
from reco_sidecar.runtime import messages as m
from reco_sidecar.settings import ServeSettings

Requester = tuple[int, int]


@dataclass
class Pending:
    requester: Requester
    generation: int


@dataclass
class Rollout:
    settings: ServeSettings
    pool_size: int
    current: checks.ExperimentsFile = field(default_factory=checks.ExperimentsFile.empty)
    generation: int = 0
    applied: dict[int, int] = field(default_factory=dict)  # slot -> generation it serves
    pending: list[Pending] = field(default_factory=list)
    # The text of the last file refused ("" for none yet; None: it could not be read).
    refused: str | None = ""

    def file_changed(self) -> bool:
        """For --watch: the file's text differs from what is served and from the last text
        refused (a bad file is reported once, not at every poll; an unreadable file too)."""
        path = self.settings.experiments
        if path is None:
            return False
        try:
            text: str | None = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
        return text != self.current.text and text != self.refused

    def reload(self, models: Collection[str]) -> m.SetExperiments | m.ReloadRefused:
        """Reads and validates the file; the message for every worker, or why it is refused
        (id 0: the caller sets the requester's id)."""
        path = self.settings.experiments
        if path is None:
            return m.ReloadRefused(0, ErrorKind.FAILED_PRECONDITION,
                                   "this sidecar was started without --experiments", "experiments")
        try:
            loaded = checks.read_checked(path, models)
        except RecoError as e:
            try:
                self.refused = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                self.refused = None
            return m.ReloadRefused(0, ErrorKind.FAILED_PRECONDITION,
                                   f"{e}; still serving the previous experiments", e.field)
        self.refused = ""
        self.current = loaded
        self.generation += 1
        return m.SetExperiments(self.generation, loaded.text, loaded.syntax)

    def wait(self, requester: Requester) -> None:
        self.pending.append(Pending(requester, self.generation))

    def worker_serves(self, slot: int, generation: int) -> list[tuple[Requester, m.ExperimentsDone]]:
        """A worker serves `generation`: the answers for every requester now satisfied."""
        self.applied[slot] = generation
        out, keep = [], []
        for p in self.pending:
            serving = sum(1 for g in self.applied.values() if g >= p.generation)
            if serving >= self.pool_size:
                out.append((p.requester, m.ExperimentsDone(p.requester[1], p.generation,
                                                           len(self.current.experiments.experiments), serving)))
            else:
                keep.append(p)
        self.pending = keep
        return out

    def worker_gone(self, slot: int) -> None:
        self.applied.pop(slot, None)
