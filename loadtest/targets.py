"""What a load test's runs say: ratios to the in-process ceiling, the best sustained rate, the
CPU analysis, and the targets met or missed."""

from __future__ import annotations

from typing import Any

CEILING_KEY = {"Recommend": "recommend", "Similar": "similar", "BatchRecommend": "batch_recommend"}


def ratio_to_ceiling(result: dict[str, Any], ceil: dict[str, Any] | None) -> float | None:
    """Achieved rate / the in-process rate (wall clock) x workers."""
    if not ceil:
        return None
    c = ceil[CEILING_KEY[result["call"]]]
    base = c.get("ceiling_rps") or c.get("ceiling_calls_per_s")
    return round(result["rps"] / base, 3) if base else None


def cpu_efficiency(result: dict[str, Any], ceil: dict[str, Any] | None) -> float | None:
    """CPU per call of the in-process scoring / the sidecar's CPU per request: the share of the
    sidecar's CPU that is scoring. Steadier than wall-clock rates on a shared machine."""
    if not ceil or not result.get("sidecar_cpu_ms_per_request"):
        return None
    in_process = float(ceil[CEILING_KEY[result["call"]]]["cpu_ms_per_call"])
    return round(in_process / float(result["sidecar_cpu_ms_per_request"]), 3)



def _run(summary: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((r for r in summary["runs"] if r["label"] == label), None)


def best_sustained(summary: dict[str, Any], call: str) -> dict[str, Any] | None:
    """The highest rate served with zero errors: unthrottled runs, or fixed steps that reached
    at least 97 % of their target."""
    best = None
    for r in summary["runs"]:
        if r["call"] != call or r["errors"] or r["kind"] not in ("unthrottled", "fixed_rate"):
            continue
        if r["kind"] == "fixed_rate" and r["rps"] < 0.97 * r["target_rps"]:
            continue
        if best is None or r["rps"] > best["rps"]:
            best = r
    return best


def analysis(summary: dict[str, Any]) -> dict[str, Any]:
    """CPU cost per Recommend split into serving overhead (unknown users: no scoring) and the
    rest, and the rate two whole cores would sustain at that cost, the client's share removed.
    On a machine shared with other work this is steadier than the achieved rates."""
    probe = _run(summary, "Recommend-unknown-users-max-c16")
    best = best_sustained(summary, "Recommend")
    if not probe or not best:
        return {}
    cores = summary["machine"]["cpus"] or 2
    total = best["sidecar_cpu_ms_per_request"]
    overhead = probe["sidecar_cpu_ms_per_request"]
    client_cores = best["cpu"]["client_cpu_s"] / best["cpu"]["wall_s"]
    out = {
        "recommend_best_run": best["label"],
        "recommend_sidecar_cpu_ms_per_request": total,
        "overhead_cpu_ms_per_request_without_scoring": overhead,
        "scoring_cpu_ms_per_request": round(total - overhead, 3),
        "client_cores_at_best": round(client_cores, 2),
        "sidecar_cores_at_best": round(best["cpu"]["sidecar_cpu_s"] / best["cpu"]["wall_s"], 2),
        "other_cores_at_best": round(best["cpu"].get("other_cpu_s", 0.0) / best["cpu"]["wall_s"], 2),
        "projected_recommend_rps_on_idle_machine": round((cores - client_cores) * 1e3 / total),
    }
    ceil = summary.get("ceiling")
    if ceil:
        out["in_process_cpu_ms_single_query"] = ceil["recommend"]["cpu_ms_per_call"]
        out["in_process_cpu_ms_per_user_batched_64"] = round(ceil["recommend_batched_64"]["cpu_ms_per_call"] / 64, 3)
        out["similar_in_process_cpu_ms"] = ceil["similar"]["cpu_ms_per_call"]
    sim = best_sustained(summary, "Similar")
    if sim:
        out["similar_sidecar_cpu_ms_per_request"] = sim["sidecar_cpu_ms_per_request"]
        out["projected_similar_rps_on_idle_machine"] = round(
            (cores - sim["cpu"]["client_cpu_s"] / sim["cpu"]["wall_s"]) * 1e3 / sim["sidecar_cpu_ms_per_request"])
    return out


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(name: str, value: Any, target: str, met: bool | None, detail: str = "") -> None:
        out.append({"target": name, "value": value, "goal": target, "met": met, "detail": detail})

    r = _run(summary, "Recommend-rps1000")
    if r:
        add("Recommend p99 at 1,000 RPS, zero errors", r["latency_ms"]["p99"], "<= 10 ms, 0 errors",
            r["latency_ms"]["p99"] <= 10 and r["errors"] == 0 and r["rps"] >= 970,
            f"achieved {r['rps']} RPS, {r['errors']} errors")
    best = best_sustained(summary, "Recommend")
    ceil = summary.get("ceiling")
    if best and ceil:
        ratio = best["rps"] / ceil["recommend"]["ceiling_rps"]
        add("highest sustained Recommend rate / in-process ceiling", round(ratio, 3), ">= 0.70", ratio >= 0.7,
            f"{best['rps']} RPS ({best['label']}, p99 {best['latency_ms']['p99']} ms) vs ceiling "
            f"{ceil['recommend']['ceiling_rps']} RPS")
    r = _run(summary, "Similar-rps2000")
    if r:
        add("Similar p99 at 2,000 RPS", r["latency_ms"]["p99"], "<= 5 ms",
            r["latency_ms"]["p99"] <= 5 and r["errors"] == 0 and r["rps"] >= 1940,
            f"achieved {r['rps']} RPS, {r['errors']} errors")
    sc = summary.get("sidecar")
    if sc:
        add("start to ready (this run, page cache warm)", sc["start_to_ready_s"], "<= 2 s",
            sc["start_to_ready_s"] <= 2.0)
    for rl in summary.get("reload_runs") or ([summary["reload"]] if summary.get("reload") else []):
        add(f"errors during reloads ({rl['rate']} RPS offered)", rl["reloading"]["errors"] + rl["reload_failures"], "0",
            rl["reloading"]["errors"] == 0 and rl["reload_failures"] == 0,
            f"{rl['reloads']} reloads, {rl['reload_failures']} failed")
        add(f"reload-storm p99 / steady p99 ({rl['rate']} RPS offered)", rl["p99_ratio"], "<= 1.5",
            rl["p99_ratio"] is not None and rl["p99_ratio"] <= 1.5,
            f"{rl['reloading']['p99_ms']} ms vs {rl['steady']['p99_ms']} ms at {rl['rate']} RPS")
    best = best_sustained(summary, "BatchRecommend")
    if best:
        users_s = best["rps"] * int(summary["settings"]["batch_users"])
        add(f"BatchRecommend users/s ({summary['settings']['batch_users']} users per call, ghz)", round(users_s),
            ">= 5,000", users_s >= 5000, best["label"])
    return out


