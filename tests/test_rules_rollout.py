"""The rules rollout state machine (runtime/supervisor/rules_rollout.py), without processes:
a bad file changes nothing; a good one reaches every slot and is answered once all serve it;
late, dead and restarted workers; one rollout at a time."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.runtime import payload
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.supervisor.rules_rollout import Answer, Outcome, RulesRollout, Send

GOOD = 'hide = ["i1"]\n[[rules]]\nmodel = "demo"\n[rules.diversity]\ncap_field = "creator"\ncap = 2\n'


def _sent(actions: Sequence[object]) -> list[tuple[int, int, str]]:
    """(slot, generation, file text) of each SetRules sent."""
    return [(a.slot, a.message.generation, payload.read(a.message.payload).decode())
            for a in actions if isinstance(a, Send) and isinstance(a.message, m.SetRules)]


def _rollout(tmp_path: pathlib.Path, text: str = GOOD) -> RulesRollout:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    r = RulesRollout(path, pool_size=2, timeout=10.0)
    assert r.booted(0) == [] and r.booted(1) == []  # no rules served yet: nothing to send
    return r


def test_a_good_file_reaches_every_slot_and_is_answered_when_all_serve_it(tmp_path: pathlib.Path) -> None:
    r = _rollout(tmp_path)
    actions = r.asked((0, 7), now=0.0)
    assert _sent(actions) == [(0, 1, GOOD), (1, 1, GOOD)]
    assert r.busy and r.current.hide == ("i1",) and r.generation == 1
    assert r.applied(0, 1) == []
    done = r.applied(1, 1)
    assert Outcome(True, 1) in done
    (answer,) = [a for a in done if isinstance(a, Answer)]
    assert answer.requester == (0, 7) and answer.message == m.RulesDone(7, 1, 1, 2)
    assert not r.busy
    # A worker booting afterwards is sent the file the pool serves (as a checked payload file).
    r.died(1)
    assert _sent(r.booted(1)) == [(1, 1, GOOD)]


def test_a_bad_file_is_refused_naming_the_field_and_changes_nothing(tmp_path: pathlib.Path) -> None:
    r = _rollout(tmp_path)
    r.asked(None, 0.0)
    r.applied(0, 1)
    r.applied(1, 1)
    (tmp_path / "rules.toml").write_text(GOOD.replace("cap = 2", "cap = true"))
    actions = r.asked((1, 3), 1.0)
    assert not any(isinstance(a, Send) for a in actions)
    (answer,) = [a for a in actions if isinstance(a, Answer)]
    assert isinstance(answer.message, m.ReloadRefused)
    assert answer.message.kind is ErrorKind.FAILED_PRECONDITION and answer.message.field == "rules[0].diversity.cap"
    assert r.generation == 1 and r.current.text == GOOD and not r.busy
    assert not r.file_changed()  # --watch reports a bad file once, not at every poll


def test_one_rollout_at_a_time_and_a_late_worker_times_out_the_answer(tmp_path: pathlib.Path) -> None:
    r = _rollout(tmp_path)
    r.asked((0, 1), 0.0)
    second = r.asked((1, 2), 0.5)
    assert [a.message.kind for a in second if isinstance(a, Answer)] == [ErrorKind.UNAVAILABLE]  # type: ignore[union-attr]
    r.applied(0, 1)
    assert r.tick(5.0) == []
    late = r.tick(11.0)
    (answer,) = [a for a in late if isinstance(a, Answer)]
    assert isinstance(answer.message, m.ReloadRefused) and "worker(s) 1" in answer.message.message
    assert r.generation == 1 and not r.busy  # rolled out: the late worker gets it when it answers


def test_a_worker_that_dies_mid_rollout_confirms_when_it_boots_again(tmp_path: pathlib.Path) -> None:
    r = _rollout(tmp_path)
    r.asked((0, 1), 0.0)
    r.applied(0, 1)
    r.died(1)
    assert _sent(r.booted(1)) == [(1, 1, GOOD)]  # forked before, or not: sent again
    done = r.applied(1, 1)
    assert any(isinstance(a, Answer) and isinstance(a.message, m.RulesDone) for a in done)


def test_without_a_rules_file_reload_is_refused(tmp_path: pathlib.Path) -> None:
    r = RulesRollout(None, pool_size=1, timeout=1.0)
    (outcome, answer) = r.asked((0, 1), 0.0)
    assert isinstance(answer, Answer) and isinstance(answer.message, m.ReloadRefused)
    assert answer.message.field == "rules" and not outcome.ok  # type: ignore[union-attr]


def test_the_requesters_trace_goes_with_its_rollouts_messages_only(tmp_path: pathlib.Path) -> None:
    """A traced ReloadRules: every SetRules of its rollout, a restarted worker's included,
    carries the call's traceparent, so each worker's swap joins that trace; once it is done a
    booting worker's SetRules carries none."""
    traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = _rollout(tmp_path)
    sent = [a.message for a in r.asked((0, 7), 0.0, traced) if isinstance(a, Send)]
    r.died(1)
    sent += [a.message for a in r.booted(1) if isinstance(a, Send)]
    assert len(sent) == 3 and all(isinstance(x, m.SetRules) and x.traceparent == traced for x in sent)
    r.applied(0, 1)
    r.applied(1, 1)
    assert not r.busy
    r.died(1)
    (later,) = [a.message for a in r.booted(1) if isinstance(a, Send)]
    assert isinstance(later, m.SetRules) and later.traceparent == ""
