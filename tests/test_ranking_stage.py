"""The ranking stage through a real sidecar (two worker processes, real gRPC channels): caps,
MMR, pins, hiding everywhere on a rules reload, and stable pages under concurrent callers.
Expected lists come from a plain reference written here over the artifact's own arrays, over
the whole catalogue: the stage's bounded candidate set must give the same answer."""

from __future__ import annotations

import collections
import os
import pathlib
import signal
import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from harness.inprocess import in_process_sidecar
from harness.procs import wait_until
from harness.sidecar import Sidecar, running_sidecar
from reco_sidecar.artifact.loader import open_model
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc

CAPPED = """
[[rules]]
model = "demo"
[rules.diversity]
cap_field = "creator"
cap = 2
"""


class Reference:
    """The artifact's arrays, and each stage rule computed naively over every item, by id."""

    def __init__(self, version_dir: pathlib.Path) -> None:
        model = open_model(version_dir)
        assert model.catalog is not None
        self.model = model
        self.items = np.asarray(model.item_factors, dtype=np.float64)
        self.item_ids = list(model.items.ids)
        self.user_ids = sorted(model.users.ids)
        self.creator = dict(zip(self.item_ids, model.catalog.fields["creator"], strict=True))

    def seen(self, user: str) -> set[str]:
        row = self.model.users.row(user)
        assert row is not None
        return {self.item_ids[r] for r in self.model.seen_rows(row).tolist()}

    def scores(self, user: str) -> np.ndarray:
        row = self.model.users.row(user)
        assert row is not None
        s = self.items @ np.asarray(self.model.user_factors[row], dtype=np.float64)
        s[self.model.seen_rows(row)] = -np.inf
        return s

    def order(self, user: str) -> list[str]:
        s = self.scores(user)
        return [self.item_ids[r] for r in np.lexsort((np.arange(len(s)), -s)) if np.isfinite(s[r])]

    def plain(self, user: str, n: int) -> list[str]:
        return self.order(user)[:n]

    def capped(self, user: str, n: int, cap: int, window: int = 10) -> list[str]:
        order = self.order(user)
        out: list[str] = []
        while len(out) < n:
            recent = [self.creator[i] for i in out[-(window - 1):]]
            out.append(next(i for i in order if i not in out and recent.count(self.creator[i]) < cap))
        return out

    def mmr_problems(self, user: str, got: list[str], lam: float, pool: int, cap: int = 0,
                     window: int = 10) -> tuple[list[str], int]:
        """Checks `got` as the MMR list of the whole catalogue, position by position: the item
        must be among the `pool` best remaining items by score that the cap allows, with the
        largest (1 - lam) * score - lam * max cosine to the last `window` items there. Cosines
        are float64 here and float32 in the stage, so "largest" is to within 1e-6 and the check
        goes on from the item the stage chose. Returns the problems and how many positions the
        pool's limit decided (the best value over all remaining items lay outside the pool)."""
        s = self.scores(user)
        unit = self.items / np.linalg.norm(self.items, axis=1, keepdims=True)
        row = {item: r for r, item in enumerate(self.item_ids)}
        order = self.order(user)
        placed: list[str] = []
        problems: list[str] = []
        limited = 0

        def values(items: list[str]) -> np.ndarray:
            rows = [row[i] for i in items]
            relevance = np.asarray((1.0 - lam) * s[rows], dtype=np.float64)
            if not placed:
                return relevance
            last = unit[[row[p] for p in placed[-window:]]]
            return np.asarray(relevance - lam * (unit[rows] @ last.T).max(axis=1), dtype=np.float64)

        for position, item in enumerate(got, start=1):
            recent = [self.creator[i] for i in placed[-(window - 1):]] if window > 1 else []
            taken = set(placed)
            remaining = [i for i in order if i not in taken]
            allowed = [i for i in remaining if not cap or recent.count(self.creator[i]) < cap]
            candidates = allowed[:pool]
            if item not in candidates:
                problems.append(f"{user} position {position}: {item} is not in the pool")
                break
            value = values(candidates)
            mine = float(value[candidates.index(item)])
            if mine < float(value.max()) - 1e-6:
                problems.append(f"{user} position {position}: {item} has {mine}, the pool's best {value.max()}")
            if float(values(remaining).max()) > float(value.max()) + 1e-6:
                limited += 1
            placed.append(item)
        return problems, limited


@pytest.fixture(scope="module")
def reference(demo_root: pathlib.Path) -> Reference:
    return Reference(demo_root / "demo" / "1")


@pytest.fixture
def rules_path(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "rules.toml"
    path.write_text(CAPPED)
    return path


@pytest.fixture
def sidecar(demo_root: pathlib.Path, rules_path: pathlib.Path) -> Iterator[Sidecar]:
    with running_sidecar(demo_root, "demo", workers=2, extra_args=["--rules", str(rules_path)]) as sc:
        yield sc


def ids(resp: reco_pb2.RecommendResponse | reco_pb2.BatchUserResult) -> list[str]:
    return [i.item_id for i in resp.items]


def reload(sc: Sidecar, path: pathlib.Path, text: str) -> reco_pb2.RankingReloadRulesResponse:
    path.write_text(text)
    done: reco_pb2.RankingReloadRulesResponse = sc.stub().ReloadRules(reco_pb2.RankingReloadRulesRequest(),
                                                                      timeout=30)
    return done


def test_a_creator_cap_of_two_holds_for_every_user_and_equals_the_whole_catalogue(
        sidecar: Sidecar, reference: Reference, rules_path: pathlib.Path) -> None:
    creator = reference.creator
    # Without the cap many first pages hold three or more items by one creator: the cap has work.
    crowded = sum(max(collections.Counter(creator[i] for i in reference.plain(u, 10)).values()) >= 3
                  for u in reference.user_ids)
    assert crowded > len(reference.user_ids) // 4
    stub = sidecar.stub()
    stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=reference.user_ids, n=10,
                                                                users_per_message=100), timeout=120)
    answers = {u.user_id: ids(u) for message in stream for u in message.users}
    assert sorted(answers) == reference.user_ids
    for user in reference.user_ids:
        got = answers[user]
        assert max(collections.Counter(creator[i] for i in got).values()) <= 2, user
        # exactly the capped list of the whole catalogue, though only the top candidates are retrieved
        assert got == reference.capped(user, 10, 2), user
    # Recommend through each worker agrees, and so does every page of ten further down.
    for address in sidecar.worker_addresses:
        worker = sidecar.stub(address)
        for user in reference.user_ids[::37]:
            resp = worker.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10, offset=10), timeout=10)
            assert ids(resp) == reference.capped(user, 20, 2)[10:]
            assert max(collections.Counter(creator[i] for i in ids(resp)).values()) <= 2


def test_a_list_the_first_retrieval_cannot_make_exact_is_retrieved_deeper_through_recommend(
        sidecar: Sidecar, reference: Reference, rules_path: pathlib.Path) -> None:
    # One item per creator in any ten positions: the first retrieval (40 items for n = 10)
    # holds too few creators for many users, so Recommend must ask retrieval again, deeper.
    reload(sidecar, rules_path, CAPPED.replace("cap = 2", "cap = 1"))
    users = reference.user_ids[::5]
    expected = {u: reference.capped(u, 10, 1) for u in users}
    order = {u: reference.order(u) for u in users}
    past_first = [u for u in users if max(order[u].index(i) for i in expected[u]) >= 40]
    assert len(past_first) > len(users) // 10  # the deeper path has work
    stub = sidecar.stub()
    # Concurrent callers, so deeper retrievals share the batcher with first ones.
    calls = {u: stub.Recommend.future(reco_pb2.RecommendRequest(user_id=u, n=10), timeout=60) for u in users}
    for user, call in calls.items():
        assert ids(call.result()) == expected[user], user


def test_mmr_with_lambda_zero_is_the_model_ranking_and_a_positive_lambda_diversifies(
        sidecar: Sidecar, reference: Reference, rules_path: pathlib.Path) -> None:
    reload(sidecar, rules_path, '[[rules]]\nmodel = "demo"\n[rules.diversity]\nmmr_lambda = 0.0\n')
    stub = sidecar.stub()
    row = {item: r for r, item in enumerate(reference.item_ids)}
    for user in reference.user_ids[::7]:
        resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10, offset=3), timeout=10)
        assert ids(resp) == reference.plain(user, 13)[3:]
        assert [i.score for i in resp.items] == pytest.approx(
            [float(reference.scores(user)[row[i]]) for i in reference.plain(user, 13)[3:]], rel=1e-5)
    reload(sidecar, rules_path, '[[rules]]\nmodel = "demo"\n[rules.diversity]\nmmr_lambda = 0.5\n')
    unit = reference.items / np.linalg.norm(reference.items, axis=1, keepdims=True)

    def mean_similarity(items: list[str]) -> float:
        rows = [row[i] for i in items]
        sim = unit[rows] @ unit[rows].T
        return float((sim.sum() - len(rows)) / (len(rows) * (len(rows) - 1)))

    sample = reference.user_ids[::7]
    diverse = [mean_similarity(ids(stub.Recommend(reco_pb2.RecommendRequest(user_id=u, n=10), timeout=10)))
               for u in sample]
    plain = [mean_similarity(reference.plain(u, 10)) for u in sample]
    assert np.mean(diverse) < np.mean(plain)


@pytest.mark.parametrize("lam,pool,cap", [(0.3, 50, 2), (0.7, 12, 0)])
def test_mmr_is_the_whole_catalogues_mmr_on_every_worker_and_page(
        sidecar: Sidecar, reference: Reference, rules_path: pathlib.Path, lam: float, pool: int, cap: int) -> None:
    # The benchmark's rules (a creator cap and MMR over a pool of 50), and a strong lambda over
    # a small pool without a cap, where the pool's limit decides positions.
    text = f'[[rules]]\nmodel = "demo"\ncandidates = {pool}\n[rules.diversity]\nmmr_lambda = {lam}\n'
    reload(sidecar, rules_path, text + (f'cap_field = "creator"\ncap = {cap}\n' if cap else ""))
    users = reference.user_ids[::4]
    stub = sidecar.stub()
    stream = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=15, users_per_message=100),
                                 timeout=120)
    lists = {u.user_id: ids(u) for message in stream for u in message.users}
    assert sorted(lists) == sorted(users)
    problems: list[str] = []
    limited = changed = 0
    for user in users:
        found, by_pool = reference.mmr_problems(user, lists[user], lam, pool, cap)
        problems += found
        limited += by_pool
        changed += lists[user] != (reference.capped(user, 15, cap) if cap else reference.plain(user, 15))
    assert problems == []
    assert changed > len(users) // 2  # MMR reorders most lists: the check has work
    if pool < 50:
        assert limited > len(users)  # and the pool's limit decided many positions
    # Each worker, called concurrently, gives the same list's tail as a page further down.
    for address in sidecar.worker_addresses:
        worker = sidecar.stub(address)
        sample = users[::9]
        calls = {u: worker.Recommend.future(reco_pb2.RecommendRequest(user_id=u, n=10, offset=5), timeout=30)
                 for u in sample}
        for user, call in calls.items():
            assert ids(call.result()) == lists[user][5:], user


def test_a_hidden_item_leaves_every_worker_at_once_and_a_bad_file_keeps_the_rules(
        sidecar: Sidecar, reference: Reference, rules_path: pathlib.Path) -> None:
    user = reference.user_ids[5]
    top = reference.capped(user, 10, 2)
    hidden = top[0]
    workers = [sidecar.stub(a) for a in sidecar.worker_addresses]
    assert len(workers) == 2

    def answers(stub: reco_pb2_grpc.RecommenderStub) -> list[list[str]]:
        batch = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=[user], n=10), timeout=10)
        return [ids(stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10), timeout=10)),
                [i.item_id for message in batch for i in message.items],
                ids(stub.Recommend(reco_pb2.RecommendRequest(user_id="someone-new", n=50), timeout=10)),
                [i.item_id for i in stub.Similar(reco_pb2.SimilarRequest(item_id=top[1], n=50), timeout=10).items]]

    assert all(hidden in answers(w)[0] for w in workers)
    done = reload(sidecar, rules_path, f'hide = ["{hidden}"]\n' + CAPPED)
    assert (done.workers, done.rule_sets) == (2, 1)
    # The reload returns once every worker serves the file: each one's next answers lack the item.
    for w in workers:
        for answer in answers(w):
            assert hidden not in answer and len(answer) in (10, 50)
    # A bad file is refused naming the field; every worker keeps the rules it had.
    rules_path.write_text(f'hide = ["{hidden}"]\n' + CAPPED.replace("cap = 2", "cap = -1"))
    with pytest.raises(grpc.RpcError) as e:
        sidecar.stub().ReloadRules(reco_pb2.RankingReloadRulesRequest(), timeout=30)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (e.value.details() or "").startswith("rules[0].diversity.cap:")
    for w in workers:
        for answer in answers(w):
            assert hidden not in answer
    events = [x.get("event") for x in sidecar.log_events()]
    assert "rules_done" in events and "rules_refused" in events
    # A worker that dies and is restarted boots with the rules the pool serves.
    address = sidecar.worker_addresses[0]
    old_pid = workers[0].GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid
    os.kill(old_pid, signal.SIGKILL)

    def restarted() -> bool:
        try:
            status = sidecar.stub(address).GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=5)
        except grpc.RpcError:
            return False
        return bool(status.worker.pid != old_pid)

    wait_until(restarted, 60, "the killed worker's replacement answering")
    for answer in answers(sidecar.stub(address)):
        assert hidden not in answer


def test_a_worker_killed_mid_rollout_commits_nothing_until_its_restart_staged_the_file(
        sidecar: Sidecar, reference: Reference, rules_path: pathlib.Path) -> None:
    """Two-phase rules rollout: the live worker stages the file but serves the old rules while
    the other cannot answer; once that one is killed, its restart is prepared and then every
    worker swaps at once, and the waiting ReloadRules returns."""
    user = reference.user_ids[7]
    hidden = reference.capped(user, 10, 2)[0]
    request = reco_pb2.RecommendRequest(user_id=user, n=10)
    live, stopped_address = sidecar.worker_addresses
    pids = [sidecar.stub(a).GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid
            for a in (live, stopped_address)]
    os.kill(pids[1], signal.SIGSTOP)  # it cannot stage the file while stopped
    rules_path.write_text(f'hide = ["{hidden}"]\n' + CAPPED)
    answered: list[reco_pb2.RankingReloadRulesResponse] = []
    # Asked on the live worker's own address: the shared port might hand the call to the stopped one.
    caller = threading.Thread(target=lambda: answered.append(
        sidecar.stub(live).ReloadRules(reco_pb2.RankingReloadRulesRequest(), timeout=60)))
    try:
        caller.start()

        def staged_by_the_live_worker() -> bool:
            return any(e.get("event") == "rules_prepared" and e.get("pid") == pids[0] for e in sidecar.log_events())

        wait_until(staged_by_the_live_worker, 30, "the live worker staging the rules")
        # Staged is not served: the pool commits only once every worker staged the file.
        assert hidden in ids(sidecar.stub(live).Recommend(request, timeout=10))
        assert not answered
    finally:
        os.kill(pids[1], signal.SIGKILL)
    caller.join(timeout=60)
    assert answered and answered[0].workers == 2
    for address in (live, stopped_address):
        assert hidden not in ids(sidecar.stub(address).Recommend(request, timeout=10))
    restarted = sidecar.stub(stopped_address).GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).worker.pid
    assert restarted != pids[1]


def test_pins_land_at_their_positions(sidecar: Sidecar, reference: Reference, rules_path: pathlib.Path) -> None:
    user = reference.user_ids[11]
    far = [i for i in reference.order(user)][-3:]  # far down this user's ranking
    first, fifth, twelfth = far
    reload(sidecar, rules_path, CAPPED + f'[[rules.pin]]\nitem = "{first}"\nposition = 1\n'
           f'[[rules.pin]]\nitem = "{fifth}"\nposition = 5\n[[rules.pin]]\nitem = "{twelfth}"\nposition = 12\n')
    stub = sidecar.stub()
    page1 = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10), timeout=10)
    page2 = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10, offset=10), timeout=10)
    assert ids(page1)[0] == first and ids(page1)[4] == fifth and ids(page2)[1] == twelfth
    assert [i.pinned for i in page1.items] == [True, False, False, False, True] + [False] * 5
    assert [i.rank for i in page2.items] == list(range(11, 21))
    assert not set(ids(page1)) & set(ids(page2))
    # A user who has seen a pinned item gets an organic item at its position instead.
    holder = next(u for u in reference.user_ids if first in reference.seen(u))
    resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=holder, n=10), timeout=10)
    assert first not in ids(resp) and not resp.items[0].pinned


def test_pages_stay_stable_under_32_concurrent_callers(sidecar: Sidecar, reference: Reference,
                                                      rules_path: pathlib.Path) -> None:
    reload(sidecar, rules_path, CAPPED.replace("cap = 2", "cap = 2\nmmr_lambda = 0.3")
           + '[[rules.pin]]\nitem = "i0000001"\nposition = 3\n'
           + '[[rules.boost]]\nitem = "i0000002"\nfactor = 3.0\n')
    stub = sidecar.stub()
    users = reference.user_ids[:64]
    whole = {u: ids(stub.Recommend(reco_pb2.RecommendRequest(user_id=u, n=40), timeout=10)) for u in users}
    failures: list[str] = []
    start = threading.Barrier(32)

    def walk(k: int) -> None:
        s = sidecar.stub()
        start.wait()
        for u in users[k % 2::2]:
            pages = [ids(s.Recommend(reco_pb2.RecommendRequest(user_id=u, n=8, offset=o), timeout=30))
                     for o in range(0, 40, 8)]
            joined = [i for p in pages for i in p]
            if joined != whole[u] or len(set(joined)) != len(joined):
                failures.append(f"caller {k}, {u}: {joined} != {whole[u]}")

    threads = [threading.Thread(target=walk, args=(k,)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_watch_rolls_a_changed_rules_file_out(demo_root: pathlib.Path, tmp_path: pathlib.Path,
                                              reference: Reference) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"rules": []}')
    with running_sidecar(demo_root, "demo", workers=2, extra_args=["--rules", str(path), "--watch", "0.2"]) as sc:
        hidden = reference.plain(reference.user_ids[3], 1)[0]
        workers = [sc.stub(a) for a in sc.worker_addresses]
        path.write_text(f'{{"hide": ["{hidden}"]}}')

        def gone() -> bool:
            request = reco_pb2.RecommendRequest(user_id=reference.user_ids[3], n=10)
            return all(hidden not in ids(w.Recommend(request, timeout=10)) for w in workers)

        deadline = time.monotonic() + 30
        while not gone():
            assert time.monotonic() < deadline, "the watched rules file never reached every worker"
            time.sleep(0.05)


def test_freshness_boosts_and_buries_reorder_exactly_as_over_the_whole_catalogue(
        sidecar: Sidecar, reference: Reference, rules_path: pathlib.Path) -> None:
    catalog = reference.model.catalog
    assert catalog is not None and catalog.created_at is not None
    created = dict(zip(reference.item_ids, catalog.created_at.tolist(), strict=True))
    # Half the catalogue is younger than the median age (wall clock, as the sidecar measures it).
    max_age_days = (time.time() - float(np.median(catalog.created_at))) / 86_400
    user = reference.user_ids[21]
    order = reference.order(user)
    positive = [i for i in order if reference.scores(user)[reference.item_ids.index(i)] > 0]
    lifted, sunk = positive[-1], order[0]  # far down (a positive score, so a factor lifts it), and the first
    reload(sidecar, rules_path, f'[[rules]]\nmodel = "demo"\n[rules.freshness]\nmax_age_days = {max_age_days}\n'
           f'boost = 4.0\n[[rules.boost]]\nitem = "{lifted}"\nfactor = 1000000.0\n'
           f'[[rules.boost]]\nitem = "{sunk}"\nfactor = 0.000001\n')
    stub = sidecar.stub()
    row = {item: r for r, item in enumerate(reference.item_ids)}
    reordered = 0
    for u in [*reference.user_ids[::25], user]:
        scores = reference.scores(u)
        young = {i for i in reference.item_ids if time.time() - created[i] < max_age_days * 86_400}

        def adjusted(i: str, s: np.ndarray = scores, y: set[str] = young) -> float:
            f = (4.0 if i in y else 1.0) * {lifted: 1e6, sunk: 1e-6}.get(i, 1.0)
            v = float(s[row[i]])
            return v * f if v >= 0 else v / f

        expected = sorted(reference.order(u), key=lambda i: (-adjusted(i), row[i]))[:20]
        got = ids(stub.Recommend(reco_pb2.RecommendRequest(user_id=u, n=20), timeout=10))
        assert got == expected, u
        reordered += expected != reference.plain(u, 20)
    assert reordered > 10  # the rules had work to do
    got = ids(stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10), timeout=10))
    assert got[0] == lifted and sunk not in got


def test_an_experiment_arm_gets_its_own_rule_set(demo_root: pathlib.Path, tmp_path: pathlib.Path,
                                                  reference: Reference) -> None:
    experiments, rules = tmp_path / "experiments.toml", tmp_path / "rules.toml"
    experiments.write_text('[[experiments]]\nname = "feed"\nsalt = "feed-1"\nshare = 1.0\n'
                           'arms = [{ name = "plain", model = "demo" }, { name = "capped", model = "demo" }]\n')
    rules.write_text('[[rules]]\nmodel = "demo"\nexperiment = "feed"\narm = "capped"\n'
                     '[rules.diversity]\ncap_field = "creator"\ncap = 2\n')
    with running_sidecar(demo_root, "demo", workers=2,
                         extra_args=["--experiments", str(experiments), "--rules", str(rules)]) as sc:
        stub = sc.stub()
        users = reference.user_ids[::9]
        for user in users:
            for arm, expected in (("plain", reference.plain(user, 10)), ("capped", reference.capped(user, 10, 2))):
                resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=10, experiment="feed", arm=arm),
                                      timeout=10)
                assert (resp.arm, ids(resp)) == (arm, expected), user
        # Users get their own arm's rules in BatchRecommend too, as Recommend gives them.
        batch = stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=users, n=10, users_per_message=50),
                                    timeout=60)
        arms: collections.Counter[str] = collections.Counter()
        for message in batch:
            for u in message.users:
                arms[u.arm] += 1
                expected = reference.capped(u.user_id, 10, 2) if u.arm == "capped" else reference.plain(u.user_id, 10)
                assert ids(u) == expected, (u.user_id, u.arm)
        assert arms["plain"] > 0 and arms["capped"] > 0


def test_a_bad_rules_file_at_start_is_exit_2_naming_the_field(demo_root: pathlib.Path,
                                                             tmp_path: pathlib.Path) -> None:
    from tests.test_settings import run_cli

    bad = tmp_path / "bad.toml"
    bad.write_text(CAPPED.replace('cap_field = "creator"', 'cap_field = 7'))
    done = run_cli("serve", "--model-root", str(demo_root), "--model", "demo", "--rules", str(bad))
    assert done.returncode == 2 and "rules[0].diversity.cap_field" in done.stderr


def test_reload_rules_without_a_rules_file_is_failed_precondition(demo_root: pathlib.Path) -> None:
    with in_process_sidecar(demo_root, "demo") as s:
        with pytest.raises(grpc.RpcError) as e:
            s.stub().ReloadRules(reco_pb2.RankingReloadRulesRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (e.value.details() or "").startswith("rules:")
