"""Several models and A/B experiments through the real process tree and real gRPC channels."""

from __future__ import annotations

import json
import pathlib
import shutil
import urllib.request
from typing import Any

import grpc
import pytest

from harness import accounting
from harness.procs import wait_until
from reco_sidecar.experiments import assignment, config
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.training import als
from tests.support.load import Load
from tests.support.models import train_demo
from tests.support.server import running_sidecar
from tests.support.versions import copy_version, flip_byte, poison_factors
from tests.test_jsonld import RECO, _expand

pytestmark = pytest.mark.slow

EXPERIMENTS = """
[[experiments]]
name = "feed"
salt = "feed-2026"
share = 1.0
arms = [
  { name = "control", model = "posts", weight = 1 },
  { name = "worlds-arm", model = "worlds", weight = 1 },
  { name = "popular", baseline = "popular", weight = 1 },
  { name = "shadow-random", baseline = "random", shadow = true },
]
"""


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """`posts` and `worlds`, two versions each."""
    root = tmp_path_factory.mktemp("models")
    for name in ("posts", "worlds"):
        for seed in (5, 7):
            train_demo(root, name=name, params=als.AlsParams(factors=16, iterations=4, seed=seed),
                       data_dir=tmp_path_factory.mktemp(name))
    return root


def test_two_models_side_by_side_each_reloaded_under_load(two_models: pathlib.Path) -> None:
    versions = {m: sorted(int(p.name) for p in (two_models / m).iterdir() if p.name.isdigit())
                for m in ("posts", "worlds")}
    with running_sidecar(two_models, "posts", workers=2,
                         extra_args=["--model", "worlds", "--version", "latest"]) as sc:
        assert sc.ready["models"] == {"posts": versions["posts"][-1], "worlds": versions["worlds"][-1]}
        stubs = [sc.stub(a) for a in sc.worker_addresses]

        def call(i: int) -> tuple[str, int]:
            model = ("posts", "worlds", "")[i % 3]
            r = stubs[i % 2].Recommend(reco_pb2.RecommendRequest(model=model, user_id=f"u{i % 500:07d}", n=5),
                                       timeout=10)
            assert r.model == (model or "posts")
            return r.model, r.version

        status = stubs[0].GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10)
        assert status.default_model == "posts" and [m.model for m in status.models] == ["posts", "worlds"]
        with Load(call, threads=4) as load:
            wait_until(lambda: load.result.ok > 30, 30, "calls before the reloads")
            for model in ("posts", "worlds", "posts", "worlds"):
                old = {m.model: m.version for m in stubs[0].GetModelStatus(
                    reco_pb2.GetModelStatusRequest(), timeout=10).models}
                target = versions[model][0] if old[model] == versions[model][-1] else versions[model][-1]
                done = sc.stub().Reload(reco_pb2.ReloadRequest(model=model, version=str(target)), timeout=60)
                assert (done.model, done.new_version, done.workers) == (model, target, 2)
                for stub in stubs:  # the other model did not move
                    now = {m.model: m.version for m in stub.GetModelStatus(
                        reco_pb2.GetModelStatusRequest(), timeout=10).models}
                    other = "worlds" if model == "posts" else "posts"
                    assert now[model] == target and now[other] == old[other]
            seen = load.result.ok
            wait_until(lambda: load.result.ok > seen + 30, 30, "calls after the reloads")
        assert load.result.errors == []
        assert {m for m, _ in load.result.seen} == {"posts", "worlds"}
        # Memory stays shared: each worker maps each model's serving version's files (no private
        # copy), and the pages of those files are shared between the workers.
        status = stubs[0].GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10)
        serving = {m.model: m.version for m in status.models}
        maps = [accounting.file_mappings(w.pid) for w in status.workers]
        assert len(maps) == 2
        for model, version in serving.items():
            factors = str(two_models / model / str(version) / "item_factors.npy")
            for mapping in maps:
                assert factors in mapping, f"{factors} is not mapped by every worker"
                assert mapping[factors].get("Shared_Clean", 0) > 0
        with pytest.raises(grpc.RpcError) as e:
            stubs[0].Recommend(reco_pb2.RecommendRequest(model="nope", user_id="u1", n=1), timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and (e.value.details() or "").startswith("model:")


def _arms(stub: object, users: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    out = []
    for u in users:
        r = stub.Recommend(reco_pb2.RecommendRequest(user_id=u, n=5), timeout=10)  # type: ignore[attr-defined]
        out.append((r.experiment, r.arm, tuple(i.item_id for i in r.items)))
    return out


def test_experiments_assign_tag_shadow_and_reload_all_or_nothing(two_models: pathlib.Path,
                                                                 tmp_path: pathlib.Path) -> None:
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(EXPERIMENTS)
    expected = config.parse(EXPERIMENTS, "toml")
    users = [f"u{i:07d}" for i in range(0, 600, 3)] + [f"new-user-{i}" for i in range(60)]
    # every call's access log line, not the default sample
    args = ["--model", "worlds", "--experiments", str(exp_file), "--metrics-port", "0", "--access-log", "on"]
    log = tmp_path / "sidecar.log"
    with running_sidecar(two_models, "posts", workers=2, extra_args=args, log_path=log) as sc:
        a, b = (sc.stub(addr) for addr in sc.worker_addresses)
        first = _arms(a, users)
        assert first == _arms(b, users)  # the same on every worker
        # Counters are the whole sidecar's, whichever worker answers the listing.
        for stub in (a, b):
            listed = stub.ListExperiments(reco_pb2.ListExperimentsRequest(), timeout=10).experiments[0].arms
            assert sum(x.requests for x in listed) == 2 * len(users)

        def shadowed() -> int:
            arm = a.ListExperiments(reco_pb2.ListExperimentsRequest(), timeout=10).experiments[0].arms[3]
            return int(arm.shadow_scored + arm.shadow_dropped)

        wait_until(lambda: shadowed() == 2 * len(users), 30, "every shadow ranking done or dropped")
        # BatchRecommend keeps every user in their arm: the same arm and items as Recommend, in
        # both stream forms, and the arm's model named.
        single = list(b.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=5), timeout=30))
        assert [(r.experiment, r.arm, tuple(i.item_id for i in r.items)) for r in single] == first
        assert {(r.arm, r.model) for r in single} >= {("control", "posts"), ("worlds-arm", "worlds")}
        chunked = list(a.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=5, users_per_message=64,
                                                                       include_jsonld=True), timeout=30))
        results = [u for message in chunked for u in message.users]
        assert [(u.experiment, u.arm, tuple(i.item_id for i in u.items)) for u in results] == first
        assert all(u.model == "worlds" for u in results if u.arm == "worlds-arm")
        assert all(json.loads(u.jsonld)["arm"] == u.arm for u in results)
        # 100,000 ids through the server: each in the arm assignment.py gives it, and the
        # shares within 4 standard deviations of the weights.
        many = [f"s{i:06d}" for i in range(100_000)]
        got = [u.arm for m in b.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=many, n=1,
                                                                               users_per_message=1000), timeout=120)
               for u in m.users]
        feed_exp = expected.get("feed")
        assert feed_exp is not None
        assert got == [arm.name for arm in (assignment.assign(feed_exp, u) for u in many) if arm is not None]
        for name in ("control", "worlds-arm", "popular"):
            share = got.count(name) / len(many)
            assert abs(share - 1 / 3) < 4 * (1 / 3 * 2 / 3 / len(many)) ** 0.5, (name, share)
        feed = expected.get("feed")
        assert feed is not None
        for u, (experiment, arm, _) in zip(users, first, strict=True):
            want = assignment.assign(feed, u)
            assert want is not None and (experiment, arm) == ("feed", want.name)
        shares = {name: sum(1 for _, arm, _ in first if arm == name) / len(users)
                  for name in ("control", "worlds-arm", "popular")}
        for share in shares.values():  # 260 users, p = 1/3: within 4 standard deviations
            assert abs(share - 1 / 3) < 4 * (1 / 3 * 2 / 3 / len(users)) ** 0.5
        # Every response names the arm, also in its JSON-LD; a shadow arm is never served.
        r = a.Recommend(reco_pb2.RecommendRequest(user_id=users[0], n=5), timeout=10)
        doc = json.loads(r.jsonld)
        assert (doc["experiment"], doc["arm"]) == (r.experiment, r.arm) and r.arm != "shadow-random"
        node = _expand(r.jsonld)  # by a JSON-LD processor, in the project vocabulary
        assert node[RECO + "arm"][0]["@value"] == r.arm and node[RECO + "experiment"][0]["@value"] == "feed"
        # QA override; a shadow or unknown arm is refused naming the field.
        forced = a.Recommend(reco_pb2.RecommendRequest(user_id=users[0], n=5, experiment="feed", arm="popular"),
                             timeout=10)
        assert forced.arm == "popular" and forced.source == reco_pb2.SOURCE_POPULAR
        for bad in ("shadow-random", "nope"):
            with pytest.raises(grpc.RpcError) as e:
                a.Recommend(reco_pb2.RecommendRequest(user_id=users[0], n=5, experiment="feed", arm=bad),
                            timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and (e.value.details() or "").startswith("arm:")
        listing = a.ListExperiments(reco_pb2.ListExperimentsRequest(), timeout=10)
        arms = {x.name: x for x in listing.experiments[0].arms}
        assert arms["shadow-random"].shadow and arms["shadow-random"].traffic_share == 0
        assert arms["control"].traffic_share == pytest.approx(1 / 3)
        assert sum(x.requests for x in arms.values()) > 0
        # The arm is a metric label and a field of the access log line.
        metrics_port = next(e["port"] for e in sc.log_events() if e.get("event") == "metrics_serving")

        def scrape() -> str:
            body: bytes = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
            return body.decode()

        # counted in process and flushed about once a second, like every per-call metric
        wait_until(lambda: 'reco_arm_responses_total{arm="control",experiment="feed"' in scrape()
                   and "reco_shadow_overlap_bucket" in scrape(), 30, "the arm and shadow metrics")
        lines = [e for e in sc.log_events() if e.get("event") == "rpc" and e.get("code") == "OK"]
        recommend = [e for e in lines if e.get("method") == "Recommend"]
        assert recommend and all(e.get("arm") and e.get("experiment") == "feed" for e in recommend)
        # A BatchRecommend line counts its users per arm.
        batch = [e for e in lines if e.get("method") == "BatchRecommend"]
        assert [sum(e["arms"].values()) for e in batch] == [len(users), len(users), len(many)]
        assert set(batch[0]["arms"]) == {"feed/control", "feed/worlds-arm", "feed/popular"}

        shadow = arms["shadow-random"]
        assert shadow.requests == 0 and 0.0 <= shadow.mean_overlap <= 1.0
        # The same experiment without its shadow arm serves exactly the same answers.
        exp_file.write_text(EXPERIMENTS.replace('  { name = "shadow-random", baseline = "random", shadow = true },\n',
                                                ""))
        assert a.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=30).workers == 2
        assert [x.name for x in a.ListExperiments(reco_pb2.ListExperimentsRequest(),
                                                  timeout=10).experiments[0].arms] == ["control", "worlds-arm",
                                                                                       "popular"]
        assert _arms(a, users) == first and _arms(b, users) == first

        # A bad file is refused naming the field, and the old one keeps serving.
        exp_file.write_text(EXPERIMENTS.replace("weight = 1 },\n  { name = \"popular\"",
                                                "weight = -2 },\n  { name = \"popular\""))
        with pytest.raises(grpc.RpcError) as e:
            a.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=30)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (e.value.details() or "").startswith("experiments[0].arms[1].weight:")
        assert _arms(b, users) == first

        # A good file reaches every worker before the call returns.
        exp_file.write_text(EXPERIMENTS.replace('salt = "feed-2026"', 'salt = "feed-2027"'))
        done = a.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=30)
        assert (done.workers, done.experiments) == (2, 1)
        moved = _arms(b, users)
        assert moved == _arms(a, users) and moved != first
        text = scrape()
        assert 'reco_experiment_reloads_total{outcome="refused"} 1.0' in text
        assert 'reco_experiment_reloads_total{outcome="ok"} 2.0' in text
        wait_until(lambda: 'reco_shadow_rank_correlation_count{arm="shadow-random",experiment="feed"}' in scrape(),
                   30, "the shadow rank correlation metric")

    # A restart assigns every user as before.
    with running_sidecar(two_models, "posts", workers=2, extra_args=args) as again:
        assert _arms(again.stub(again.worker_addresses[1]), users) == moved


def test_a_600_kib_experiments_file_rolls_out_to_every_worker(two_models: pathlib.Path,
                                                             tmp_path: pathlib.Path) -> None:
    """A file far larger than one control frame (the limit is 1 MiB) reaches every worker: it
    crosses as a payload file checked by its sha256, not inside a message."""
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(EXPERIMENTS)
    padding = "# " + "x" * 98 + "\n"
    big = EXPERIMENTS.replace('salt = "feed-2026"', 'salt = "feed-big"') + padding * (600 * 1024 // len(padding) + 1)
    assert 600 * 1024 < len(big.encode()) < config.MAX_FILE_BYTES
    with running_sidecar(two_models, "posts", workers=2,
                         extra_args=["--model", "worlds", "--experiments", str(exp_file)]) as sc:
        exp_file.write_text(big)
        done = sc.stub().ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=120)
        assert (done.workers, done.experiments) == (2, 1)
        applied = [e for e in sc.log_events() if e.get("event") == "experiments_applied"]
        assert sorted(e["generation"] for e in applied) == [done.generation] * 2


def test_a_bad_experiments_file_at_start_is_exit_2_naming_the_field(two_models: pathlib.Path,
                                                                   tmp_path: pathlib.Path) -> None:
    from tests.test_settings import run_cli

    bad = tmp_path / "bad.toml"
    bad.write_text(EXPERIMENTS.replace('model = "worlds"', 'model = "avatars"'))
    done = run_cli("serve", "--model-root", str(two_models), "--model", "posts", "--model", "worlds",
                   "--experiments", str(bad))
    assert done.returncode == 2 and "experiments[0].arms[1].model" in done.stderr


def test_watch_rolls_out_a_changed_file_and_refuses_a_bad_one_once(two_models: pathlib.Path,
                                                                   tmp_path: pathlib.Path) -> None:
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(EXPERIMENTS)
    args = ["--model", "worlds", "--experiments", str(exp_file), "--watch", "0.2"]
    with running_sidecar(two_models, "posts", workers=2, extra_args=args) as sc:
        stubs = [sc.stub(addr) for addr in sc.worker_addresses]

        def generations() -> set[int]:
            return {s.ListExperiments(reco_pb2.ListExperimentsRequest(), timeout=10).generation for s in stubs}

        assert generations() == {0}
        exp_file.write_text(EXPERIMENTS.replace("share = 1.0", "share = 0.5"))
        wait_until(lambda: generations() == {1}, 30, "the changed file on every worker")
        assert {s.ListExperiments(reco_pb2.ListExperimentsRequest(), timeout=10).experiments[0].share
                for s in stubs} == {0.5}
        exp_file.write_text(EXPERIMENTS.replace("share = 1.0", "share = 1.5"))
        wait_until(lambda: any(e.get("event") == "experiments_refused" for e in sc.log_events()), 30,
                   "the bad file refused")
        refused = [e for e in sc.log_events() if e.get("event") == "experiments_refused"]
        assert refused[0]["field"] == "experiments[0].share"
        exp_file.write_text(EXPERIMENTS.replace("share = 1.0", "share = 0.25"))
        wait_until(lambda: generations() == {2}, 30, "the next good file")
        assert len([e for e in sc.log_events() if e.get("event") == "experiments_refused"]) == 1


@pytest.mark.parametrize("args,message", [
    ([], "--default-model is needed"),
    (["--model", "posts", "--model", "worlds", "--version", "1"], "with several models it can only be 'latest'"),
    (["--model", "posts", "--default-model", "worlds"], "--default-model 'worlds' is not among the models served"),
    (["--model", "posts", "--model", "worlds", "--model-store", "s3://bucket/models"],
     "--model-store follows one model"),
    (["--model", "posts,bad name"], "'bad name' is not a model name"),
])
def test_inconsistent_model_settings_are_exit_code_2(two_models: pathlib.Path, args: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from reco_sidecar import cli
    from reco_sidecar.common import logs

    for name in [n for n in __import__("os").environ if n.startswith("RECO_")]:
        monkeypatch.delenv(name)
    try:
        code = cli.main(["serve", "--model-root", str(two_models), *args])
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        logs.configure("warning")
    assert code == 2
    assert message in capsys.readouterr().err


def test_models_from_the_root_or_the_variable(two_models: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reco_sidecar import cli
    from reco_sidecar.commands import serve

    for name in [n for n in __import__("os").environ if n.startswith("RECO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RECO_DEFAULT_MODEL", "worlds")
    args = cli.build_parser().parse_args(["serve", "--model-root", str(two_models)])
    assert serve._model_names(two_models, args.model, args.default_model) == (("posts", "worlds"), "worlds")
    monkeypatch.setenv("RECO_MODEL", "worlds,posts")
    args = cli.build_parser().parse_args(["serve", "--model-root", str(two_models)])
    assert args.model == ("worlds", "posts")
    args = cli.build_parser().parse_args(["serve", "--model-root", str(two_models), "--model", "posts"])
    assert args.model == ("posts",)  # a flag wins over its variable


def test_default_model_and_experiment_fields_without_a_file(two_models: pathlib.Path) -> None:
    with running_sidecar(two_models, "posts", workers=1,
                         extra_args=["--model", "worlds", "--default-model", "worlds"]) as sc:
        assert set(sc.ready["models"]) == {"posts", "worlds"} and sc.ready["model"] == "worlds"
        stub = sc.stub()
        assert stub.Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3), timeout=10).model == "worlds"
        with pytest.raises(grpc.RpcError) as e:
            stub.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (e.value.details() or "").startswith("experiments:")
        for (experiment, arm), name in ((("nope", ""), "experiment:"), (("", "control"), "arm:")):
            with pytest.raises(grpc.RpcError) as e:
                stub.Recommend(reco_pb2.RecommendRequest(user_id="u1", n=3, experiment=experiment, arm=arm),
                               timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (e.value.details() or "").startswith(name)


PINNED = """
[[experiments]]
name = "versions"
salt = "versions-1"
share = 1.0
arms = [
  { name = "current", model = "posts", weight = 1 },
  { name = "old", model = "posts", version = 1, weight = 1 },
  { name = "old-shadow", model = "worlds", version = 1, shadow = true },
]
"""


def test_an_arm_pinned_to_a_version_serves_it_beside_the_current_one(two_models: pathlib.Path,
                                                                      tmp_path: pathlib.Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(two_models, root)
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(PINNED)
    users = [f"u{i:07d}" for i in range(0, 300, 5)]
    with running_sidecar(root, "posts", workers=2, extra_args=["--model", "worlds", "--experiments",
                                                                str(exp_file)]) as sc:
        a, b = (sc.stub(addr) for addr in sc.worker_addresses)

        def answers(stub: Any) -> list[tuple[str, int, tuple[str, ...]]]:
            out = []
            for u in users:
                r = stub.Recommend(reco_pb2.RecommendRequest(user_id=u, n=5), timeout=10)
                out.append((r.arm, r.version, tuple(i.item_id for i in r.items)))
            return out

        served = answers(a)
        assert served == answers(b)
        batch = list(a.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=5), timeout=30))
        assert [(r.arm, r.version, tuple(i.item_id for i in r.items)) for r in batch] == served
        assert {(arm, version) for arm, version, _ in served} == {("current", 2), ("old", 1)}
        # A pinned arm answers exactly what that version answers when it is the one served.
        old_user = next(u for u, (arm, _, _) in zip(users, served, strict=True) if arm == "old")
        pinned_items = next(items for u, (_, _, items) in zip(users, served, strict=True) if u == old_user)
        sc.stub().Reload(reco_pb2.ReloadRequest(model="posts", version="1"), timeout=60)
        plain = a.Recommend(reco_pb2.RecommendRequest(user_id=old_user, n=5, experiment="versions",
                                                      arm="current"), timeout=10)
        assert (plain.version, tuple(i.item_id for i in plain.items)) == (1, pinned_items)
        wait_until(lambda: a.ListExperiments(reco_pb2.ListExperimentsRequest(), timeout=10)
                   .experiments[0].arms[2].shadow_scored > 0, 30, "the pinned shadow compared")

        # A version that is not there is refused by the supervisor, naming the arm.
        exp_file.write_text(PINNED.replace("version = 1, weight", "version = 9, weight"))
        with pytest.raises(grpc.RpcError) as e:
            a.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=30)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (e.value.details() or "").startswith("experiments[0].arms[1].version:")
        # One whose files the workers cannot load (the manifest vouches for its factors, which
        # hold NaN) is refused by the workers, naming the arm; nothing changes.
        bad = copy_version(root / "posts", 1)
        poison_factors(root / "posts" / str(bad))
        exp_file.write_text(PINNED.replace("version = 1, weight", f"version = {bad}, weight"))
        with pytest.raises(grpc.RpcError) as e:
            a.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=60)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (e.value.details() or "").startswith("experiments[0].arms[1].version:")
        assert f"version {bad}" in (e.value.details() or "")
        sc.stub().Reload(reco_pb2.ReloadRequest(model="posts", version="2"), timeout=60)
        assert answers(b) == served and answers(a) == served
        assert {x.generation for x in (s.ListExperiments(reco_pb2.ListExperimentsRequest(), timeout=10)
                                       for s in (a, b))} == {0}


def test_a_pinned_version_that_fails_its_checks_stops_serve_naming_the_arm(two_models: pathlib.Path,
                                                                          tmp_path: pathlib.Path) -> None:
    from tests.test_settings import run_cli

    root = tmp_path / "models"
    shutil.copytree(two_models, root)
    bad = copy_version(root / "worlds", 1)  # newest, so `latest` skips it: only the arm names it
    flip_byte(root / "worlds" / str(bad) / "item_factors.npy")
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(PINNED.replace("model = \"worlds\", version = 1", f"model = \"worlds\", version = {bad}"))
    done = run_cli("serve", "--model-root", str(root), "--model", "posts", "--model", "worlds", "--version",
                   "latest", "--experiments", str(exp_file))
    assert done.returncode == 2 and "experiments[0].arms[2].version" in done.stderr


def test_an_experiment_runs_on_its_controls_model_only(two_models: pathlib.Path, tmp_path: pathlib.Path) -> None:
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(EXPERIMENTS)
    with running_sidecar(two_models, "posts", workers=1,
                         extra_args=["--model", "worlds", "--experiments", str(exp_file)]) as sc:
        stub = sc.stub()
        for u in (f"u{i:07d}" for i in range(0, 100, 7)):
            posts = stub.Recommend(reco_pb2.RecommendRequest(model="posts", user_id=u, n=3), timeout=10)
            worlds = stub.Recommend(reco_pb2.RecommendRequest(model="worlds", user_id=u, n=3), timeout=10)
            assert posts.experiment == "feed" and posts.arm
            assert (worlds.experiment, worlds.arm, worlds.model) == ("", "", "worlds")


def test_watch_reloads_each_model_on_its_own(two_models: pathlib.Path, tmp_path: pathlib.Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(two_models, root)
    with running_sidecar(root, "posts", workers=2, extra_args=["--model", "worlds", "--watch", "0.2"]) as sc:
        stubs = [sc.stub(addr) for addr in sc.worker_addresses]

        def versions() -> set[tuple[tuple[str, int], ...]]:
            return {tuple((m.model, m.version) for m in s.GetModelStatus(reco_pb2.GetModelStatusRequest(),
                                                                           timeout=10).models) for s in stubs}

        assert versions() == {(("posts", 2), ("worlds", 2))}
        new = copy_version(root / "worlds", 1)
        wait_until(lambda: versions() == {(("posts", 2), ("worlds", new))}, 30, "worlds reloaded by --watch")
        assert any(e.get("event") == "watch_found_version" and e.get("model") == "worlds" for e in sc.log_events())
        assert not any(e.get("event") == "reload_start" and e.get("model") == "posts" for e in sc.log_events())
