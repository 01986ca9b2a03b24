"""`reco-sidecar evaluate --replay`: train before a split, replay the rest in time order, score
each user's next new item with and without online updates, report the lift with a user
bootstrap as JSON and a PNG."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
import pytest

from reco_sidecar import cli
from reco_sidecar.artifact import loader
from reco_sidecar.common import logs
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.engine.eventtypes import from_weights
from reco_sidecar.experiments import replay
from reco_sidecar.training import demo_data

SPEC = demo_data.DemoSpec(users=300, items=150, interactions=9000, clusters=4, seed=3, drift=0.8)


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("replay")
    data, _ = demo_data.write(SPEC, tmp / "drift.csv")
    code = cli.main(["evaluate", "--replay", str(data), "--model-root", str(tmp / "models"), "--factors", "16",
                     "--iterations", "8", "--bootstrap", "200", "--out", str(tmp / "r.json"),
                     "--plot", str(tmp / "r.png")])
    assert code == 0
    return tmp, json.loads((tmp / "r.json").read_text())


def test_every_later_interaction_is_replayed_and_accounted_for(ran: tuple[pathlib.Path, dict[str, Any]]) -> None:
    tmp, report = ran
    rows = replay.read_rows(tmp / "drift.csv")
    times = np.array([r.time for r in rows])
    split = float(np.quantile(times, 0.8))
    assert report["split_at"] == split
    assert report["trained"]["interactions"] == int((times <= split).sum())
    c = report["counts"]
    assert c["replayed"] == int((times > split).sum())
    assert c["scored"] + c["already_seen"] + c["unknown_item"] == c["replayed"]
    assert c["scored"] > 0 and sum(d["scored"] for d in report["by_day"]) == c["scored"]
    assert (tmp / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_on_drifting_data_online_updates_lift_recall_and_ndcg(ran: tuple[pathlib.Path, dict[str, Any]]) -> None:
    _, report = ran
    for metric in ("recall_at_10", "ndcg_at_10"):
        lift = report["lift"][metric]
        assert lift["online"] == report["metrics"]["online"][metric]
        assert lift["frozen"] == report["metrics"]["frozen"][metric]
        low, high = lift["absolute_ci95"]
        assert 0 < low <= lift["absolute"] <= high
        assert lift["relative_ci95"][0] <= lift["relative"] <= lift["relative_ci95"][1]


def test_an_interaction_is_scored_before_it_is_learned(ran: tuple[pathlib.Path, dict[str, Any]]) -> None:
    """No leak from the future: while a user has no earlier replayed event, the online arm is
    the frozen one, rank for rank; afterwards the two differ for some users."""
    tmp, report = ran
    model = loader.open_model(pathlib.Path(report["trained"]["version"]))
    rows = replay.read_rows(tmp / "drift.csv")
    # the replay's order: time, then position in the file
    later = [r for _, _, r in sorted((r.time, n, r) for n, r in enumerate(rows) if r.time > report["split_at"])]
    scored, counts = replay.replay(model, later, 10)
    assert counts == {k: v for k, v in report["counts"].items() if k != "scored_users"}
    first: dict[str, int] = {}
    for n, r in enumerate(later):
        first.setdefault(r.user_id, n)
    fresh = [s for s in scored if first[s.user] == s.index]
    assert fresh and all(s.ranks["online"] == s.ranks["frozen"] == s.ranks["seen_only"] for s in fresh)
    assert any(s.ranks["online"] != s.ranks["frozen"] for s in scored)


def _later(tmp: pathlib.Path, split_at: float) -> list[replay.Row]:
    """The replay's order: time, then position in the file."""
    rows = replay.read_rows(tmp / "drift.csv")
    return [r for _, _, r in sorted((r.time, n, r) for n, r in enumerate(rows) if r.time > split_at)]


@pytest.mark.slow
def test_through_the_feedback_rpc_every_interaction_ranks_as_in_process(
        ran: tuple[pathlib.Path, dict[str, Any]]) -> None:
    """The same version, the same events: a real sidecar fed through Feedback in time order and
    asked with Recommend ranks each scored interaction exactly where the in-process solve does."""
    from reco_sidecar.experiments.replay_sidecar import SidecarReplay

    tmp, report = ran
    version = pathlib.Path(report["trained"]["version"])
    model = loader.open_model(version)
    later = _later(tmp, report["split_at"])
    expected, counts = replay.replay(model, later, 10)
    with SidecarReplay(version.parent.parent, version.parent.name, int(version.name)) as served:
        got, served_counts = replay.replay(model, later, 10, served)
        assert served.recommend_calls == len(expected)
    assert served_counts == counts
    assert [(s.index, s.user) for s in got] == [(s.index, s.user) for s in expected]
    differ = [(s.index, s.user, s.ranks, e.ranks) for s, e in zip(got, expected, strict=True) if s.ranks != e.ranks]
    assert differ == []
    # per user, the hits are the same; and the online arm is not simply the frozen one
    assert any(s.ranks["online"] != s.ranks["frozen"] for s in got)


@pytest.mark.slow
def test_evaluate_through_a_sidecar_reports_the_same_lift(ran: tuple[pathlib.Path, dict[str, Any]]) -> None:
    tmp, in_process = ran
    out = tmp / "through-sidecar"
    out.mkdir()
    code = cli.main(["evaluate", "--replay", str(tmp / "drift.csv"), "--model-root", str(out / "models"),
                     "--factors", "16", "--iterations", "8", "--bootstrap", "200", "--through", "sidecar",
                     "--out", str(out / "r.json"), "--plot", str(out / "r.png")])
    assert code == 0
    report = json.loads((out / "r.json").read_text())
    assert report["through"].startswith("sidecar: ")
    assert report["counts"] == in_process["counts"]
    # deterministic training (same data, split and seeds) and the same solve: the same figures
    assert report["metrics"] == in_process["metrics"] and report["lift"] == in_process["lift"]
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_log_without_timestamps_is_refused_naming_it(tmp_path: pathlib.Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "flat.csv"
    data.write_text("user_id,item_id,weight\nu1,i1,1\n")
    code = cli.main(["evaluate", "--replay", str(data), "--model-root", str(tmp_path), "--out",
                     str(tmp_path / "r.json")])
    assert code != 0 and not (tmp_path / "r.json").exists()
    assert "replay: " in capsys.readouterr().err


def test_evaluate_without_replay_still_needs_its_experiment(tmp_path: pathlib.Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["evaluate", "--model-root", str(tmp_path), "--out", str(tmp_path / "r.json")])
    assert code != 0 and "--experiments is required" in capsys.readouterr().err


def test_a_replayed_row_never_becomes_a_shown_event() -> None:
    """A shown type (weight 0) is an impression: a row of either sign maps to an interaction
    type, or is refused naming the weights when the version has none of its sign."""
    types = from_weights({"view": 0.1, "like": 0.7, "shown": 0.0})
    assert replay.as_event(0, replay.Row("u", "i", 1.4, 5.0), types).type == "like"
    with pytest.raises(InvalidArgument, match="no event type of the sign") as e:
        replay.as_event(1, replay.Row("u", "i", -0.3, 5.0), types)
    assert e.value.field == "weights"
