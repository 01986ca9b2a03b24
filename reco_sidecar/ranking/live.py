"""The rules one worker serves, swapped whole when a new file is rolled out: a request reads
one (file, generation) pair and never a mix of two files."""

from __future__ import annotations

from reco_sidecar.ranking.rules import RulesFile


class LiveRules:
    def __init__(self, rules: RulesFile, generation: int) -> None:
        self._current = (rules, generation)

    @property
    def current(self) -> tuple[RulesFile, int]:
        return self._current  # one reference read: atomic under the GIL

    def replace(self, rules: RulesFile, generation: int) -> None:
        if generation >= self._current[1]:  # a late message never rolls a worker back
            self._current = (rules, generation)
