"""Prints the headline numbers of the latest load test and benchmarks as Markdown (what
docs/performance.md keeps).

    python -m loadtest.numbers [loadtest/results/latest/summary.json] [bench/results]
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

from harness.paths import ROOT


def _load(path: pathlib.Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _run(s: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((r for r in s["runs"] if r["label"] == label), None)


def _cores(r: dict[str, Any], key: str) -> str:
    c = r.get("cpu", {})
    return f"{c.get(key, 0) / c['wall_s']:.2f}" if c.get("wall_s") else "–"


def loadtest_tables(s: dict[str, Any]) -> list[str]:
    out = [f"Load test: commit `{s['git']['commit'][:12]}`, ghz descriptors: {s['ghz'].get('descriptors')}, "
           f"load average at start {' '.join(s['machine']['loadavg'])}.", "",
           "| run | achieved RPS | p50 ms | p90 ms | p99 ms | errors | / in-process ceiling | sidecar CPU ms/req | "
           "sidecar cores | client cores | other cores | worker balance |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["runs"]:
        lat = r["latency_ms"]
        out.append(f"| {r['label']} | {r['rps']:,.0f} | {lat['p50']:,.1f} | {lat['p90']:,.1f} | {lat['p99']:,.1f} | "
                   f"{r['errors']} | {r.get('ratio_to_ceiling') or '–'} | {r.get('sidecar_cpu_ms_per_request')} | "
                   f"{_cores(r, 'sidecar_cpu_s')} | {_cores(r, 'client_cpu_s')} | {_cores(r, 'other_cpu_s')} | "
                   f"{r.get('worker_cpu_balance', '–')} |")
    c = s.get("ceiling")
    if c:
        out += ["", f"In-process ceiling (× {c['workers']} workers): Recommend {c['recommend']['ceiling_rps']:,.0f}/s "
                f"({c['recommend']['cpu_ms_per_call']} ms CPU per call), Similar {c['similar']['ceiling_rps']:,.0f}/s "
                f"({c['similar']['cpu_ms_per_call']} ms CPU), `recommend` of 10 users "
                f"{c['batch_recommend']['ceiling_calls_per_s']:,.0f} calls/s, of 64 users "
                f"{c['recommend_batched_64']['ceiling_users_per_s']:,.0f} users/s "
                f"({c['recommend_batched_64']['cpu_ms_per_call'] / 64:.2f} ms CPU per user)."]
    for rl in s.get("reload_runs") or ([s["reload"]] if s.get("reload") else []):
        out += ["", f"Reloads at {rl['rate']} RPS offered: {rl['reloads']} in {rl['seconds']:g} s, "
                f"{rl['reload_failures']} failed, "
                f"errors {rl['reloading']['errors']} (steady {rl['steady']['errors']}); "
                f"p99 {rl['reloading']['p99_ms']} "
                f"vs {rl['steady']['p99_ms']} ms steady (ratio {rl['p99_ratio']}); achieved {rl['reloading']['rps']} "
                f"vs {rl['steady']['rps']} RPS; peak PSS {rl['reloading']['memory']['pss_mib_peak']} vs "
                f"{rl['steady']['memory']['pss_mib_peak']} MiB (×{rl['peak_pss_ratio']}), peak RSS "
                f"{rl['reloading']['memory']['rss_mib_peak']} vs {rl['steady']['memory']['rss_mib_peak']} MiB "
                f"(×{rl['peak_rss_ratio']}); worker load seconds {rl['load_seconds']}; Reload RPC seconds "
                f"{rl['reload_rpc_seconds']}."]
    an = s.get("analysis")
    if an:
        out += ["", "CPU analysis: " + "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in an.items()) + "."]
    return out


def bench_lines(d: pathlib.Path) -> list[str]:
    out = []
    m = _load(d / "memory.json")
    if m and "two_workers" in m:
        out.append(f"- memory (`{m['git']['commit'][:12]}`): 1 worker PSS {m['one_worker']['pss_mib']} MiB / RSS "
                   f"{m['one_worker']['rss_mib']} MiB; 2 workers PSS {m['two_workers']['pss_mib']} / RSS "
                   f"{m['two_workers']['rss_mib']} MiB; second worker +{m['second_worker_extra_pss_mib']} MiB PSS "
                   f"(×{m['second_worker_extra_pss_share_of_model']} of the {m['model_mib_on_disk']} MiB model), "
                   f"+{m['second_worker_extra_rss_mib']} MiB RSS.")
    st = _load(d / "startup.json")
    if st and "runs" in st:
        for w, r in st["runs"].items():
            out.append(f"- start to ready (`{st['git']['commit'][:12]}`), {w} worker(s): median {r['median_s']} s "
                       f"(min {r['min_s']}, max {r['max_s']}, first {r['first_start_s']}); worker model load "
                       f"{r['worker_model_load_s_median']} s.")
        om = st.get("open_model")
        if om:
            top = ", ".join(f"{x['function']} {x['cumulative_s']} s" for x in om["top_cumulative"][1:7])
            out.append(f"  `open_model` alone {om['open_model_s']} s "
                       f"(sha256 of all files {om['sha256_all_files_s']} s):"
                       f" {top}.")
    bt = _load(d / "batch_throughput.json")
    if bt and "grpc" in bt:
        runs = "; ".join(f"{k} {v['users_per_s']:,.0f} users/s ({v['users_per_sidecar_cpu_s']:,.0f} per sidecar "
                         f"CPU-s)" if "users_per_sidecar_cpu_s" in v else f"{k} {v['users_per_s']:,.0f} users/s"
                         for k, v in bt["grpc"].items())
        ceil = "; ".join(f"{k} {v['users_per_s']:,.0f} users/s" + (f" ({v['users_per_cpu_s']:,.0f} per CPU-s)"
                                                                  if "users_per_cpu_s" in v else "")
                         for k, v in bt.get("ceilings", {}).items())
        out.append(f"- BatchRecommend (`{bt['git']['commit'][:12]}`), {bt['settings']['users']:,} users: {runs}. "
                   f"Ceilings, 2 processes: {ceil}. Best ratios: "
                   + ", ".join(f"{k} {v}" for k, v in bt["best"].items() if k.startswith(("ratio", "cpu_ratio"))) + ".")
    bg = _load(d / "batching_gain.json")
    if bg and "comparison" in bg:
        out.append(f"- dynamic batching (`{bg['git']['commit'][:12]}`): " + "; ".join(
            f"{k}: off {v['off_rps']:,.0f} RPS p99 {v['off_p99_ms']:,.0f} ms → default {v['default_rps']:,.0f} RPS "
            f"p99 {v['default_p99_ms']:,.0f} ms (×{v['rps_gain']} RPS)" for k, v in bg["comparison"].items()) + ".")
    sa = _load(d / "similar_ann.json")
    if sa and "annoy" in sa:
        out.append(f"- Similar/ANN (`{sa['git']['commit'][:12]}`), manifest {sa['manifest_ann']}: " + "; ".join(
            f"search_k {a['search_k']}: recall {a['recall_at_10']}, p50 {a['p50_ms']} ms" for a in sa["annoy"])
            + f"; exact numpy one query p50 {sa['exact_numpy_one_query']['p50_ms']} ms; exact top-10 table for all "
            f"items ≈ {sa['exact_table']['estimated_seconds_all_items_two_cores']} s on 2 cores, "
            f"{sa['exact_table']['table_bytes_k10'] / 2**20:.1f} MiB.")
    so = _load(d / "serving_overhead.json")
    if so and "runs" in so:
        out.append(f"- serving overhead (`{so['git']['commit'][:12]}`): CPU ms per Recommend "
                   + ", ".join(f"{k} {v}" for k, v in so["cpu_ms_per_request"].items())
                   + f"; info logging costs {so.get('logging_cpu_ms_per_request')} ms per request.")
        for r in so["runs"]:
            if r.get("gil_profile_layers"):
                out.append(f"  GIL profile, {r['label']} ({r['rps']:,.0f} RPS): "
                           + ", ".join(f"{k} {v:.0%}" for k, v in r["gil_profile_layers"].items()) + ".")
    return out


def main(argv: list[str]) -> int:
    summary = pathlib.Path(argv[0]) if argv else ROOT / "loadtest" / "results" / "latest" / "summary.json"
    bench_dir = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "bench" / "results"
    s = _load(summary)
    lines = loadtest_tables(s) if s else ["(no load test summary)"]
    lines += ["", *bench_lines(bench_dir)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
