"""Exact recommendation scoring in one process with ONE BLAS thread (threadpoolctl), on the
benchmark model's trained ALS factors (100k items x 64, users with their ~25 seen items left
out), for batches of B users: ms/user and users/s of

- product: the float32 matrix product alone (users x all items), the physical ceiling of
  full scoring and the yardstick every ratio below is taken against (same run);
- argpartition: product + masking seen items + `np.argpartition` top-k + sorting the k;
- partition_threshold: product + masking + `np.partition` k-th value, then the scores at
  or above it sorted (exact with ties);
- topk_before: product + masking + the chunk-maxima top_k Model.recommend used before
  scoring.py (a frozen copy below, so this baseline does not move with topk.py);
- topk_now: product + masking + today's reco_sidecar.engine.topk.select (still used by evaluation);
- kernel_float32: reco_sidecar.engine.scoring.top_k_candidates alone with k (norm-sorted blocks,
  Cauchy–Schwarz pruning, float32 block scores): the kernel as it ranked before scores were
  made batch-invariant, with building its masks from the seen-item CSR;
- kernel: reco_sidecar.engine.scoring.rank, what Model.recommend runs: candidates with a
  margin, every candidate scored again by exactdot, widened where the margin was too thin.
  Its `cost_vs_float32_kernel` is its time over kernel_float32's in the same run;
- recommend: Model.recommend end to end (query objects in, Ranked out).

Times are the calling thread's CPU time (the machine is shared: CPU time is what other
processes disturb least), each batch's best of --passes passes, summed over batches. Also
recorded: the share of (user, item) scores the kernel computed, and whether its lists equal
topk_before's (rows may differ only where BLAS rounding differs between block and full products).

    python -m bench.bench_scoring [--small] [--users 2048] [--ks 10,50,100]   # bench/results/scoring.json
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from bench import common
from harness import bench_model, scaffold

BATCHES = (1, 8, 32, 64, 512)


def _mask(scores: np.ndarray, users: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> None:
    for j, u in enumerate(users.tolist()):
        scores[j, indices[indptr[u] : indptr[u + 1]]] = -np.inf


def _argpartition(scores: np.ndarray, k: int) -> np.ndarray:
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, top, axis=1)
    return np.take_along_axis(top, np.argsort(-vals, axis=1, kind="stable"), axis=1)


def _partition_threshold(scores: np.ndarray, k: int) -> list[np.ndarray]:
    n = scores.shape[1]
    kth = np.partition(scores, n - k, axis=1)[:, n - k]
    rows, cols = np.nonzero(scores >= kth[:, None])
    order = np.lexsort((cols, -scores[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, np.arange(len(scores) + 1))
    return [cols[starts[j] : starts[j + 1]][:k] for j in range(len(scores))]


def _topk_before(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """reco_sidecar.engine.topk.select (then named top_k) as of commit 43bc774 (chunk maxima, 2-D nonzero, lexsort)."""
    b, n = scores.shape
    chunk = 128
    chunks = n // chunk
    if chunks < k or n <= 4 * chunk:  # small catalogues (only --small): plain stable sort
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(scores, order, axis=1)
    maxima = scores[:, : chunks * chunk].reshape(b, chunks, chunk).max(axis=2)
    if chunks * chunk < n:
        maxima = np.concatenate([maxima, scores[:, chunks * chunk :].max(axis=1, keepdims=True)], axis=1)
    m = maxima.shape[1]
    threshold = np.partition(maxima, m - k, axis=1)[:, m - k]
    rows, cols = np.nonzero(scores >= threshold[:, None])
    vals = scores[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    take = np.searchsorted(rows, np.arange(b))[:, None] + np.arange(k)[None, :]
    return cols[take], vals[take]


def _time(fn: Callable[[np.ndarray], object], batches: list[np.ndarray], passes: int) -> dict[str, float]:
    best_cpu = [float("inf")] * len(batches)
    best_wall = [float("inf")] * len(batches)
    for _ in range(passes):
        for i, b in enumerate(batches):
            w0, c0 = time.perf_counter(), time.thread_time()
            fn(b)
            best_cpu[i] = min(best_cpu[i], time.thread_time() - c0)
            best_wall[i] = min(best_wall[i], time.perf_counter() - w0)
    users = sum(len(b) for b in batches)
    ms = sum(best_cpu) / users * 1e3
    return {"ms_per_user": round(ms, 5), "users_per_s": round(1e3 / ms, 1),
            "wall_ms_per_user": round(sum(best_wall) / users * 1e3, 5)}


def measure(model: Any, users: np.ndarray, k: int, b: int, passes: int) -> dict[str, Any]:
    from reco_sidecar.engine import scoring, topk
    from reco_sidecar.engine.query import RecQuery, Restriction

    uf, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
    indptr, indices = np.asarray(model.seen_indptr), np.asarray(model.seen_indices)
    order = model.norm_order
    batches = [users[i : i + b] for i in range(0, len(users), b)]
    none = Restriction.none()

    def product(u: np.ndarray) -> np.ndarray:
        scores: np.ndarray = uf[u] @ items.T
        return scores

    def masked(u: np.ndarray) -> np.ndarray:
        scores = product(u)
        _mask(scores, u, indptr, indices)
        return scores

    def kernel_float32(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        masks = scoring.Masks.build([indices[indptr[x] : indptr[x + 1]] for x in u.tolist()])
        return scoring.top_k_candidates(order, uf[u], np.full(len(u), k), masks)

    def kernel(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        masks = scoring.Masks.build([indices[indptr[x] : indptr[x + 1]] for x in u.tolist()])
        return scoring.rank(order, uf[u], np.full(len(u), k), masks)

    methods: dict[str, Callable[[np.ndarray], object]] = {
        "product": product,
        "argpartition": lambda u: _argpartition(masked(u), k),
        "partition_threshold": lambda u: _partition_threshold(masked(u), k),
        "topk_before": lambda u: _topk_before(masked(u), k),
        "topk_now": lambda u: topk.select(masked(u), k),
        "kernel_float32": kernel_float32,
        "kernel": kernel,
        "recommend": lambda u: model.recommend([RecQuery(0, k, none, user_row=int(x)) for x in u.tolist()]),
    }
    out: dict[str, Any] = {"B": b, "k": k, "users": len(users)}
    for name, fn in methods.items():
        out[name] = _time(fn, batches, passes)
    base = out["product"]["ms_per_user"]
    for name in methods:
        out[name]["speedup_vs_product"] = round(base / out[name]["ms_per_user"], 2)
        out[name]["speedup_vs_topk_before"] = round(out["topk_before"]["ms_per_user"] / out[name]["ms_per_user"], 2)
    for name in ("kernel", "recommend"):
        out[name]["cost_vs_float32_kernel"] = round(out[name]["ms_per_user"] / out["kernel_float32"]["ms_per_user"], 3)
    # what pruning saved, and agreement with the full product's lists
    scored = mismatched = 0
    worst_gap = 0.0
    for u in batches:
        masks = scoring.Masks.build([indices[indptr[x] : indptr[x + 1]] for x in u.tolist()])
        # the candidates rank() asks for first: k plus its margin
        ks = scoring.Plan().candidates(np.full(len(u), k), order.n)
        state = scoring._State(order, np.ascontiguousarray(uf[u]), ks, int(ks.max()), masks)
        state.run(np.arange(len(u)), scoring.Plan())
        scored += state.scored
        rows, _, counts = kernel(u)
        full = masked(u)
        want, want_vals = topk.select(full, k)
        for j in range(len(u)):
            got = rows[j, : counts[j]]
            if got.tolist() != want[j].tolist():
                mismatched += 1
                # how far apart the full product puts the items that swapped, in units of
                # |u| * max|v| (float32 rounding of a 64-term dot product is ~1e-7 of that)
                diff = got != want[j]
                scale = np.linalg.norm(uf[u[j]]) * order.norms[0]
                worst_gap = max(worst_gap, float(np.abs(full[j, got[diff]] - want_vals[j][diff]).max() / scale))
    out["kernel"]["rows_ranked_again_by_margin"] = _widened(order, uf, users, indptr, indices, k, b)
    out["kernel"]["scored_fraction"] = round(scored / (len(users) * items.shape[0]), 4)
    out["kernel"]["lists_differing_from_full_product"] = int(mismatched)
    out["kernel"]["max_score_gap_where_differing"] = worst_gap
    return out


def _widened(order: Any, uf: np.ndarray, users: np.ndarray, indptr: np.ndarray, indices: np.ndarray, k: int,
             b: int) -> dict[str, int]:
    """How many rows scoring.rank had to rank again (margin too thin), by candidate margin."""
    from reco_sidecar.engine import scoring

    plain = scoring.top_k_candidates
    rows_asked: list[int] = []

    def counting(*args: Any) -> Any:
        rows_asked.append(len(args[1]))
        return plain(*args)

    out = {}
    scoring.top_k_candidates = counting  # type: ignore[assignment]
    try:
        for margin in (1, 2, 4):
            rows_asked.clear()
            plan = scoring.Plan(margin_min=margin, margin_share=0.0)
            for s in range(0, len(users), b):
                u = users[s : s + b]
                masks = scoring.Masks.build([indices[indptr[x] : indptr[x + 1]] for x in u.tolist()])
                scoring.rank(order, uf[u], np.full(len(u), k), masks, plan)
            out[f"margin_{margin}"] = sum(rows_asked) - len(users)
    finally:
        scoring.top_k_candidates = plain
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=1800)
    p.add_argument("--users", type=int, default=2048, help="users per (B, k); B=1 uses an eighth")
    p.add_argument("--ks", default="10,50,100")
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--passes", type=int, default=3)
    args = p.parse_args(argv)

    def body(bench_model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        from reco_sidecar.artifact import loader
        from reco_sidecar.engine import scoring

        with threadpool_limits(1, "blas"):
            print("bench_scoring: BLAS limited to 1 thread per process with threadpoolctl", flush=True)
            result["blas"] = [{k: v for k, v in i.items() if k in ("internal_api", "version", "architecture",
                                                                    "num_threads")} for i in threadpool_info()]
            model = loader.open_model(bench_model.version_dir, checksums_too=False)
            items = np.asarray(model.item_factors)
            t0 = time.perf_counter()
            order = scoring.NormOrder.build(items)
            norms = order.norms
            result["norm_order"] = {
                "build_s": round(time.perf_counter() - t0, 3),
                "extra_bytes": int(order.items.nbytes + order.rows.nbytes + order.positions.nbytes
                                   + order.norms.nbytes),
                "item_norm_percentiles": dict(zip(["max", "p99", "p90", "p50", "p10"],
                                                  np.round(np.percentile(norms, [100, 99, 90, 50, 10]), 5).tolist(),
                                                  strict=True)),
            }
            seen = np.diff(np.asarray(model.seen_indptr))
            rng = np.random.default_rng(7)
            users = rng.choice(np.flatnonzero(seen > 0), size=min(args.users, int((seen > 0).sum())), replace=False)
            result["settings"] = {"users": len(users), "passes": args.passes, "blas_threads": 1,
                                  "plan": scoring.Plan().__dict__, "mean_seen_per_user": round(float(seen.mean()), 1),
                                  "timer": "thread CPU time, best of passes per batch"}
            runs = []
            for k in (int(x) for x in args.ks.split(",")):
                for b in (int(x) for x in args.batches.split(",")):
                    deadline.bound(1)
                    run = measure(model, users[: max(b, len(users) // 8)] if b == 1 else users, k, b, args.passes)
                    runs.append(run)
                    scaffold.log("scoring", B=b, k=k, **{m: run[m]["ms_per_user"] for m in
                                                     ("product", "topk_before", "kernel_float32", "kernel",
                                                      "recommend")},
                            speedup=run["kernel"]["speedup_vs_product"],
                            cost_vs_float32=run["kernel"]["cost_vs_float32_kernel"])
            result["runs"] = runs

    return common.run("scoring", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
