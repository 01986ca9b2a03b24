"""Markdown report and latency-vs-throughput plot from a load test's summary.json.

    python -m loadtest.report loadtest/results/latest/summary.json
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
from typing import Any


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


TARGET_P99_MS = {"Recommend": 10.0, "Similar": 5.0}


def plot(summary: dict[str, Any], path: pathlib.Path) -> pathlib.Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = ["Recommend", "Similar", "BatchRecommend"]
    calls = sorted({r["call"] for r in summary["runs"] if r["kind"] in ("fixed_rate", "unthrottled")},
                   key=lambda c: order.index(c) if c in order else len(order))
    if not calls:
        return None
    fig, axes = plt.subplots(1, len(calls), figsize=(5.5 * len(calls), 4.5), squeeze=False)
    ceil = summary.get("ceiling") or {}
    for ax, call in zip(axes[0], calls, strict=True):
        for kind, marker in (("fixed_rate", "o"), ("unthrottled", "s")):
            runs = sorted((r for r in summary["runs"] if r["call"] == call and r["kind"] == kind),
                          key=lambda r: r["rps"])
            if not runs:
                continue
            x = [r["rps"] for r in runs]
            for q, style in (("p50", "-"), ("p99", "--")):
                ax.plot(x, [r["latency_ms"][q] for r in runs], style, marker=marker,
                        label=f"{q} ({'fixed rate' if kind == 'fixed_rate' else 'unthrottled, by -c'})")
            for r in runs:
                if r["errors"]:
                    ax.annotate(f"{r['errors']} err", (r["rps"], r["latency_ms"]["p99"]), fontsize=7, color="red")
        key = {"Recommend": "recommend", "Similar": "similar", "BatchRecommend": "batch_recommend"}[call]
        c = ceil.get(key, {})
        base = c.get("ceiling_rps") or c.get("ceiling_calls_per_s")
        if base:
            ax.axvline(base, color="grey", linestyle=":", label=f"in-process ceiling {base:,.0f}/s")
        goal = TARGET_P99_MS.get(call)
        if goal:
            ax.axhline(goal, color="red", linestyle=":", linewidth=1, label=f"target p99 {goal:g} ms")
        ax.set_title(call + (f" ({summary['settings']['batch_users']} users/call)" if call == "BatchRecommend" else ""))
        ax.set_xlabel("achieved requests/s")
        ax.set_ylabel("latency, ms")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"reco-sidecar under ghz, {summary['git'].get('commit', '')[:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ceiling_lines(ceil: dict[str, Any]) -> list[str]:
    return [
        "## In-process ceiling (one process, 1 BLAS thread, x workers)", "",
        f"- Recommend: {ceil['recommend']['per_process_rps']:,.0f}/s per process, "
        f"ceiling {ceil['recommend']['ceiling_rps']:,.0f}/s; "
        f"{ceil['recommend']['cpu_ms_per_call']} ms CPU per call "
        f"(CPU ceiling {ceil['recommend']['cpu_ceiling_rps']:,.0f}/s)",
        f"- Similar: {ceil['similar']['per_process_rps']:,.0f}/s per process, "
        f"ceiling {ceil['similar']['ceiling_rps']:,.0f}/s; {ceil['similar']['cpu_ms_per_call']} ms CPU "
        f"per call (CPU ceiling {ceil['similar']['cpu_ceiling_rps']:,.0f}/s)",
        f"- BatchRecommend of {ceil['batch_recommend']['batch_users']} users: ceiling "
        f"{ceil['batch_recommend']['ceiling_calls_per_s']:,.0f} calls/s "
        f"({ceil['batch_recommend']['ceiling_users_per_s']:,.0f} users/s)",
        f"- recommend() of 64 queries at once: {ceil['recommend_batched_64']['ceiling_users_per_s']:,.0f} "
        "users/s (what dynamic batching can reach)", ""]


def markdown(summary: dict[str, Any], png: pathlib.Path | None) -> str:
    lines = [f"# Load test ({summary['kind']})", ""]
    g = summary["git"]
    m = summary.get("model", {})
    dirty = " — serving code has uncommitted changes" if g.get("serving_code_dirty") else ""
    ghz = summary.get("ghz", {})
    reflection = f" (reflection: {ghz['reflection_error']})" if ghz.get("reflection_error") else ""
    lines += [f"- commit `{g.get('commit')}` ({g.get('subject')}){dirty}",
              f"- command: `{summary['command']}`",
              f"- machine: {summary['machine']}",
              f"- model: {m.get('spec')}, {m.get('bytes_on_disk', 0) / 2**20:,.0f} MiB on disk",
              f"- ghz: {ghz.get('descriptors')}{reflection}",
              ""]
    if summary.get("failures"):
        lines += ["**Failures:** " + "; ".join(summary["failures"]), ""]
    if summary.get("targets"):
        lines += ["## Targets", "", "| target | value | goal | met | detail |", "|---|---|---|---|---|"]
        for t in summary["targets"]:
            met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
            lines.append(f"| {t['target']} | {_fmt(t['value'])} | {t['goal']} | {met} | {t['detail']} |")
        lines.append("")
    ceil = summary.get("ceiling")
    if ceil:
        with contextlib.suppress(KeyError, TypeError):
            lines += ceiling_lines(ceil)
    closed = [r for r in summary["runs"] if r.get("kind") == "closed_loop"]
    if closed:
        lines += ["## Recommend, closed loop (each caller sends its next call when the last is answered)", "",
                  "Against the floors in one run: `python -m bench.floor_vs_sidecar` (its recommend-c1/c4/c8 rows).",
                  "", "| callers | RPS | p50 ms | p99 ms | sidecar CPU ms/req | errors |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['concurrency']} | {_fmt(r['rps'])} | {_fmt(r['latency_ms']['p50'])} | "
                  f"{_fmt(r['latency_ms']['p99'])} | {_fmt(r.get('sidecar_cpu_ms_per_request'))} | {r['errors']} |"
                  for r in closed]
        lines.append("")
    lines += ["## Runs", "", "| run | target RPS | -c | achieved RPS | p50 ms | p90 ms | p99 ms | p99.9 ms | "
              "errors | codes | / ceiling | sidecar CPU ms/req | scoring share of CPU | sidecar CPU s | "
              "client CPU s | other CPU s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["runs"]:
        lat = r["latency_ms"]
        cpu = r.get("cpu", {})
        lines.append(
            f"| {r['label']} | {r['target_rps'] or 'max'} | {r['concurrency']} | {_fmt(r['rps'])} | "
            f"{_fmt(lat['p50'])} | "
            f"{_fmt(lat['p90'])} | {_fmt(lat['p99'])} | {_fmt(lat['p99.9'])} | {r['errors']} | "
            f"{', '.join(f'{k} {v}' for k, v in r['status_codes'].items())} | {_fmt(r.get('ratio_to_ceiling'))} | "
            f"{_fmt(r.get('sidecar_cpu_ms_per_request'))} | {_fmt(r.get('cpu_efficiency'))} | "
            f"{_fmt(cpu.get('sidecar_cpu_s'))} | {_fmt(cpu.get('client_cpu_s'))} | {_fmt(cpu.get('other_cpu_s'))} |")
    lines.append("")
    if png:
        lines += [f"![latency vs throughput]({png.name})", ""]
    an = summary.get("analysis")
    if an:
        lines += ["## CPU cost per request (steadier than rates on a shared machine)", ""]
        lines += [f"- {k.replace('_', ' ')}: {_fmt(v)}" for k, v in an.items()]
        lines.append("")
    for rl in summary.get("reload_runs") or ([summary["reload"]] if summary.get("reload") else []):
        lines += [f"## Reloads under load, {rl['rate']} RPS", "",
                  f"Recommend at {rl['rate']} RPS for {rl['seconds']} s, steady, then with Reload every "
                  f"{rl['every_s']} s alternating versions 1 and 2 (a full copy, "
                  f"{rl['version_bytes_on_disk'] / 2**20:,.0f} MiB).", "",
                  "| phase | RPS | p50 ms | p99 ms | errors | peak PSS MiB | peak RSS MiB |",
                  "|---|---|---|---|---|---|---|"]
        for phase in ("steady", "reloading"):
            p = rl[phase]
            lines.append(f"| {phase} | {_fmt(p['rps'])} | {_fmt(p['p50_ms'])} | {_fmt(p['p99_ms'])} | {p['errors']} | "
                         f"{_fmt(p['memory'].get('pss_mib_peak'))} | {_fmt(p['memory'].get('rss_mib_peak'))} |")
        lines += ["", f"- reloads: {rl['reloads']}, failed: {rl['reload_failures']}; p99 ratio {rl['p99_ratio']}; "
                  f"peak PSS ratio {rl['peak_pss_ratio']}, peak RSS ratio {rl['peak_rss_ratio']}",
                  f"- worker load seconds: {rl['load_seconds']}",
                  f"- Reload RPC seconds: {rl['reload_rpc_seconds']}", ""]
    prof = summary.get("profile")
    if prof and prof.get("samples"):
        lines += ["## Profile of one worker during the top unthrottled Recommend run (py-spy)", "",
                  f"{prof['samples']} samples. Self time:", ""]
        lines += [f"- {share:.1%} {name}" for name, share in prof["self"][:12]]
        lines += ["", "Threads:", ""] + [f"- {share:.1%} {name}" for name, share in prof["threads"][:8]]
        lines.append("")
    return "\n".join(lines)


def write(summary: dict[str, Any], out: pathlib.Path) -> pathlib.Path:
    png = None
    try:
        png = plot(summary, out / "latency_vs_throughput.png")
    except Exception as e:  # the report must still be written
        print(json.dumps({"event": "plot_failed", "error": str(e)}), file=sys.stderr)
    path = out / "report.md"
    path.write_text(markdown(summary, png) + "\n")
    return path


if __name__ == "__main__":
    src = pathlib.Path(sys.argv[1])
    print(write(json.loads(src.read_text()), src.parent))
