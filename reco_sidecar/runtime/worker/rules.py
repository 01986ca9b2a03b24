"""The worker's side of a rules rollout (supervisor/rules_rollout.py): prepare parses the file
and stages it beside the rules that serve; commit swaps the staged file in; abort drops it.
Rules open no files, so all of it runs on the control channel's receiving thread, in the
order the messages arrived, and never waits for a model load."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import assert_never

from reco_sidecar.common import logs
from reco_sidecar.common.errors import RecoError
from reco_sidecar.common.exit_codes import ExitCode
from reco_sidecar.ranking import rules as rules_file
from reco_sidecar.ranking.live import LiveRules
from reco_sidecar.runtime import payload
from reco_sidecar.runtime import wire as m

log = logs.get(__name__)


class RulesApplier:
    def __init__(self, live: LiveRules, send: Callable[[m.ToSupervisor], bool]) -> None:
        self._live = live
        self._send = send
        self._staged: dict[int, rules_file.RulesFile] = {}

    def apply(self, message: m.PrepareRules | m.CommitRules | m.AbortRules | m.SetRules) -> None:
        match message:
            case m.PrepareRules(generation, sent, syntax):
                try:
                    self._staged = {generation: _read(sent, syntax)}  # one rollout at a time
                except RecoError as e:
                    self._send(m.RulesPrepareFailed(generation, e.message[:4000], e.field or "rules"))
                    return
                except Exception as e:  # the supervisor validated the text: a bug, reported, not fatal
                    log.exception("rules_prepare_failed", generation=generation)
                    self._send(m.RulesPrepareFailed(generation, f"{type(e).__name__}: {e}"[:4000], "rules"))
                    return
                log.info("rules_prepared", generation=generation)
                self._send(m.RulesPrepared(generation))
            case m.CommitRules(generation):
                staged = self._staged.pop(generation, None)
                if staged is None:
                    log.error("rules_commit_unprepared", generation=generation)
                    return
                self._swap(staged, generation)
            case m.AbortRules(generation):
                self._staged.pop(generation, None)
            case m.SetRules(generation, sent, syntax):
                try:
                    staged = _read(sent, syntax)
                except Exception:
                    # The pool serves this file; a worker that cannot must not serve other
                    # rules: exit, and the restart boots with it.
                    log.exception("rules_unusable", generation=generation)
                    os._exit(ExitCode.WORKERS_FAILED)
                self._swap(staged, generation)
            case _:
                assert_never(message)

    def _swap(self, rules: rules_file.RulesFile, generation: int) -> None:
        self._live.replace(rules, generation)
        log.info("rules_applied", generation=generation)
        self._send(m.RulesApplied(generation))


def _read(sent: m.Payload, syntax: str) -> rules_file.RulesFile:
    try:
        text = payload.read(sent).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as e:
        raise rules_file.RulesFileError(f"the rules file sent cannot be read: {e}", field="rules") from None
    return rules_file.parse(text, syntax)
