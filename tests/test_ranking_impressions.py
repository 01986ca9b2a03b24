"""The impressions rule (docs/ranking.md) through a real 2-worker sidecar with online learning:
after `max_shown` Feedback events of the version's shown type (weight 0) without an
engagement, the item sinks on every worker; an engagement sets its count back to 0; shown
events at or before the version's as_of do not count (docs/online.md, "as_of")."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from harness.procs import wait_until
from harness.sidecar import Sidecar, running_sidecar
from reco_sidecar.artifact.loader import open_model
from reco_sidecar.engine.model import Model
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from tests.support.learner import learner_pid

pytestmark = pytest.mark.slow

AS_OF = 1_000_000.0
FACTOR = 0.001
RULES = f"""
[[rules]]
model = "demo"
[rules.impressions]
max_shown = 3
factor = {FACTOR}
"""


@pytest.fixture(scope="module")
def shown_root(demo_root: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """demo, recording a shown type and a click that does not exclude (so a clicked item can
    come back), with an as_of to test old events against."""
    root = tmp_path_factory.mktemp("impressions") / "root"
    shutil.copytree(demo_root, root)
    path = root / "demo" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["event_types"] = {"view": {"weight": 0.1, "excludes": True}, "click": {"weight": 0.3, "excludes": False},
                               "like": {"weight": 0.7, "excludes": True}, "shown": {"weight": 0, "excludes": False}}
    manifest["as_of"] = AS_OF
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return root


@pytest.fixture(scope="module")
def model(shown_root: pathlib.Path) -> Model:
    return open_model(shown_root / "demo" / "1")


@pytest.fixture
def sidecar(shown_root: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[Sidecar]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    with running_sidecar(shown_root, "demo", workers=2,
                         extra_args=["--online-dir", str(tmp_path / "online"), "--rules", str(rules)]) as sc:
        yield sc


def reference(model: Model, user: str, sunk: set[str], n: int = 10) -> list[str]:
    """The trained vector's ranking over the whole catalogue, sunk items' scores times FACTOR."""
    row = model.users.row(user)
    assert row is not None
    s = np.asarray(model.item_factors, np.float64) @ np.asarray(model.user_factors[row], np.float64)
    for item in sunk:
        r = model.items.row(item)
        assert r is not None
        s[r] = s[r] * FACTOR if s[r] >= 0 else s[r] / FACTOR
    s[model.seen_rows(row)] = -np.inf
    return [model.items.ids[r] for r in np.lexsort((np.arange(len(s)), -s))[:n]]


def shown(user: str, item: str, ids: list[str], when: float = 0.0, kind: str = "shown") -> reco_pb2.FeedbackRequest:
    """One event per id; time 0 is when the sidecar receives it (after as_of)."""
    return reco_pb2.FeedbackRequest(events=[reco_pb2.FeedbackEvent(event_id=i, user_id=user, item_id=item, type=kind,
                                                                   time=when) for i in ids])


def answers(sc: Sidecar, user: str) -> list[tuple[list[str], list[float], int]]:
    """Every worker's Recommend and BatchRecommend, each asked on the worker's own address."""
    out = []
    for address in sc.worker_addresses:
        stub: reco_pb2_grpc.RecommenderStub = sc.stub(address)
        r = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10, omit_jsonld=True), timeout=10)
        (b,) = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=[user], n=10), timeout=10)
        out += [([i.item_id for i in r.items], [i.score for i in r.items], r.source),
                ([i.item_id for i in b.items], [i.score for i in b.items], b.source)]
    assert len(out) == 4
    return out


def test_an_item_shown_max_shown_times_without_a_click_sinks_on_every_worker(
        sidecar: Sidecar, model: Model) -> None:
    user = sorted(model.users.ids)[9]
    plain = reference(model, user, set())
    x, y = plain[0], plain[1]
    feedback = sidecar.stub().Feedback
    # Shown three times, but at or before as_of: the version already covers that time; no count.
    assert feedback(shown(user, y, ["old1", "old2", "old3"], when=AS_OF - 10), timeout=30).accepted == 3
    # Shown twice: below max_shown.
    assert feedback(shown(user, x, ["s1", "s2"]), timeout=30).accepted == 2
    for items, _, source in answers(sidecar, user):
        assert items == plain
        assert source == reco_pb2.SOURCE_MODEL  # impressions alone change no vector
    # The third time: x sinks, on every worker, in Recommend and BatchRecommend alike.
    feedback(shown(user, x, ["s3"]), timeout=30)
    expected = reference(model, user, {x})
    assert x not in expected and y in expected
    for items, _, source in answers(sidecar, user):
        assert items == expected and source == reco_pb2.SOURCE_MODEL
    # An engagement (a click, which here does not exclude the item) sets the count back to 0:
    # x returns at the place its (now online) score gives it.
    feedback(shown(user, x, ["c1"], kind="click"), timeout=30)
    for items, scores, source in answers(sidecar, user):
        assert source == reco_pb2.SOURCE_ONLINE
        assert x in items and scores == sorted(scores, reverse=True)
    # Shown three more times without a click: it sinks again.
    feedback(shown(user, x, ["s4", "s5", "s6"]), timeout=30)
    for items, _, _ in answers(sidecar, user):
        assert x not in items and len(items) == 10


@pytest.mark.parametrize(("change", "field"), [
    (("max_shown = 3", "max_shown = 0"), "rules[0].impressions.max_shown"),
    (("max_shown = 3", "max_shown = 2.5"), "rules[0].impressions.max_shown"),
    ((f"factor = {FACTOR}", "factor = 1.5"), "rules[0].impressions.factor"),  # would lift, not sink
    ((f"factor = {FACTOR}", f"factor = {FACTOR}\nafter = 3"), "rules[0].impressions.after"),
])
def test_a_bad_impressions_value_is_refused_naming_it_and_the_served_rule_stays(
        sidecar: Sidecar, model: Model, tmp_path: pathlib.Path, change: tuple[str, str], field: str) -> None:
    user = sorted(model.users.ids)[12]
    x = reference(model, user, set())[0]
    sidecar.stub().Feedback(shown(user, x, ["s1", "s2", "s3"]), timeout=30)
    sunk = reference(model, user, {x})
    for items, _, _ in answers(sidecar, user):
        assert items == sunk
    old, new = change
    assert old in RULES
    (tmp_path / "rules.toml").write_text(RULES.replace(old, new))
    with pytest.raises(grpc.RpcError) as e:
        sidecar.stub().ReloadRules(reco_pb2.RankingReloadRulesRequest(), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (e.value.details() or "").startswith(f"{field}:")
    for items, _, _ in answers(sidecar, user):
        assert items == sunk  # every worker still serves the old rule
    # A good file with a higher threshold applies to the counts already kept: three shows
    # are no longer enough, on every worker, once ReloadRules returns.
    (tmp_path / "rules.toml").write_text(RULES.replace("max_shown = 3", "max_shown = 4"))
    sidecar.stub().ReloadRules(reco_pb2.RankingReloadRulesRequest(), timeout=30)
    for items, _, _ in answers(sidecar, user):
        assert items == reference(model, user, set())




def test_the_counts_outlive_a_killed_learner(sidecar: Sidecar, model: Model) -> None:
    """They live in the learner's table, rebuilt from the journal when it restarts: an item
    sunk before the kill is sunk on every worker once the new learner acknowledges an event."""
    user = sorted(model.users.ids)[15]
    plain = reference(model, user, set())
    x, y = plain[0], plain[1]
    sidecar.stub().Feedback(shown(user, x, ["s1", "s2", "s3"]), timeout=30)
    killed = learner_pid(sidecar)
    os.kill(killed, signal.SIGKILL)

    def fed() -> reco_pb2.FeedbackResponse | None:
        try:
            answer: reco_pb2.FeedbackResponse = sidecar.stub().Feedback(shown(user, y, ["t1"]), timeout=30)
            return answer
        except grpc.RpcError as e:  # the learner restarting: a client retries (event ids make it safe)
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return None
            raise
    assert wait_until(fed, 60, "Feedback accepted by the restarted learner") is not None
    assert learner_pid(sidecar) != killed
    for items, _, _ in answers(sidecar, user):
        assert items == reference(model, user, {x})  # y, shown once, stays


def popular_reference(model: Model, sunk: set[str], n: int = 10) -> list[str]:
    """The fallback's order over the whole catalogue (popularity, ties in its own order), the
    sunk items' popularity times FACTOR."""
    order = np.asarray(model.popular_rows)
    s = np.asarray(model.popularity, np.float64)[order].copy()
    for i, r in enumerate(order.tolist()):
        if model.items.ids[r] in sunk:
            s[i] = s[i] * FACTOR if s[i] >= 0 else s[i] / FACTOR
    return [model.items.ids[order[i]] for i in np.lexsort((np.arange(len(s)), -s))[:n]]


def test_a_new_user_whose_only_events_are_impressions_sees_them_sink_in_the_popular_fallback(
        sidecar: Sidecar, model: Model) -> None:
    """A user unknown at training with only shown events has no vector: the popular fallback
    answers them. The items shown to them max_shown times sink there too, on every worker, in
    Recommend and BatchRecommend, to the place a full sort of the adjusted popularity gives.
    Another new user's fallback, and a call that disables the fallback, are as before."""
    user = "new-user-who-only-scrolls"
    assert model.users.row(user) is None
    plain = popular_reference(model, set())
    x, y = plain[0], plain[3]
    feedback = sidecar.stub().Feedback
    for items, _, source in answers(sidecar, user):
        assert items == plain and source == reco_pb2.SOURCE_POPULAR
    assert feedback(shown(user, x, ["p1", "p2", "p3"]), timeout=30).accepted == 3
    assert feedback(shown(user, y, ["q1", "q2"]), timeout=30).accepted == 2  # below max_shown
    expected = popular_reference(model, {x})
    assert x not in expected and y in expected
    for items, scores, source in answers(sidecar, user):
        assert items == expected and source == reco_pb2.SOURCE_POPULAR
        assert scores == sorted(scores, reverse=True)  # the adjusted popularity, in order
    # someone else, and a user who disabled the fallback, are not touched
    for items, _, _ in answers(sidecar, "another-new-user"):
        assert items == plain
    with pytest.raises(grpc.RpcError) as e:
        sidecar.stub().Recommend(reco_pb2.RecommendRequest(user_id=user, n=10, disable_fallback=True), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
