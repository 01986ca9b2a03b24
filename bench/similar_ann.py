"""What Similar costs on the benchmark model, and why: annoy latency and recall@10 at several
search_k values (the manifest's among them) against exact cosine neighbours, beside exact
alternatives: one query as a numpy product + top-k, and the time to precompute an exact
top-k neighbour table for every item (blocks of items, both cores).

    python -m bench.similar_ann   # writes bench/results/similar_ann.json
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pathlib
import time
from typing import Any

from bench import common
from harness import bench_model, ghz_run, scaffold


def _table_block(args: tuple[str, int, int, int]) -> float:
    """Seconds to compute exact top-k neighbours for items [start, stop)."""
    version_dir, start, stop, k = args
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import numpy as np

    from reco_sidecar.engine import ann

    unit = ann.normalized(np.load(pathlib.Path(version_dir) / "item_factors.npy"))
    started = time.perf_counter()
    for s in range(start, stop, 1000):
        sims = unit[s : min(stop, s + 1000)] @ unit.T
        np.argpartition(-sims, k, axis=1)[:, : k + 1]
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=900)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--search-k", default="-1,2000,10000,20000,50000,100000")
    p.add_argument("--table-items", type=int, default=10_000, help="items timed for the neighbour table")
    args = p.parse_args(argv)

    def body(model: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        import numpy as np
        from threadpoolctl import threadpool_limits

        from reco_sidecar.artifact import manifest as manifest_mod
        from reco_sidecar.engine import ann

        threadpool_limits(1)
        man = manifest_mod.read(model.version_dir)
        items = np.load(model.version_dir / "item_factors.npy")
        unit = ann.normalized(items)
        n, dim = items.shape
        index = ann.open_index(model.version_dir / "items.annoy", dim)
        rng = np.random.default_rng(11)
        queries = rng.choice(n, size=min(args.queries, n), replace=False)
        truth = ann.exact_neighbours(unit, queries, 10)
        result["manifest_ann"] = {"trees": man.ann.trees, "search_k": man.ann.search_k,
                                  "recall_at_10": man.ann.recall_at_10}
        annoy_rows = []
        for sk in [int(x) for x in args.search_k.split(",")]:
            deadline.bound(120)
            lat = []
            hits = 0
            for q, true_rows in zip(queries, truth, strict=True):
                t = time.perf_counter()
                got = index.get_nns_by_item(int(q), 11, search_k=sk)
                lat.append((time.perf_counter() - t) * 1e3)
                hits += len(set([r for r in got if r != q][:10]) & set(true_rows.tolist()))
            lat.sort()
            annoy_rows.append({"search_k": sk, "recall_at_10": round(hits / (10 * len(queries)), 4),
                               "p50_ms": round(ghz_run.percentile(lat, 50), 3),
                               "p99_ms": round(ghz_run.percentile(lat, 99), 3)})
            scaffold.log("similar_annoy", **annoy_rows[-1])
        result["annoy"] = annoy_rows
        lat = []
        for q in queries:
            t = time.perf_counter()
            sims = unit @ unit[q]
            top = np.argpartition(-sims, 11)[:11]
            top[np.argsort(-sims[top])]
            lat.append((time.perf_counter() - t) * 1e3)
        lat.sort()
        result["exact_numpy_one_query"] = {"recall_at_10": 1.0, "p50_ms": round(ghz_run.percentile(lat, 50), 3),
                                           "p99_ms": round(ghz_run.percentile(lat, 99), 3)}
        scaffold.log("similar_exact", **result["exact_numpy_one_query"])
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        half = args.table_items // 2
        with mp.get_context("spawn").Pool(2) as pool:
            secs = pool.map(_table_block, [(str(model.version_dir), 0, half, 10),
                                           (str(model.version_dir), half, 2 * half, 10)])
        result["exact_table"] = {"items_timed": 2 * half, "seconds": round(max(secs), 2),
                                 "estimated_seconds_all_items_two_cores": round(max(secs) * n / (2 * half), 1),
                                 "table_bytes_k10": n * 10 * (4 + 4)}
        scaffold.log("similar_table", **result["exact_table"])

    return common.run("similar_ann", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
