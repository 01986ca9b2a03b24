"""A load switched on and off in short slices beside one long ghz run, and the latencies of
the calls made while it was on against those made while it was off.

On a shared host the latency of the same load moves by several times from one minute to the
next (docs/online.md). Runs of 8-10 s taking turns still compare different minutes; slices
of a few seconds, alternating through one run, sample both sides across the same minutes.
A call belongs to the slice its start falls in (ghz records each call's end and latency);
the first `guard` seconds of every slice are left out, so that work the other side left
queued (events still being solved when feedback stops) is not counted against it.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.ghz_run import percentile


@dataclass(frozen=True)
class Slice:
    start: float  # wall-clock seconds since the epoch
    end: float
    on: bool


def call_starts(details: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """(start in epoch seconds, latency in ms) of each successful call of a ghz report's details."""
    out = []
    for d in details:
        if d.get("error"):
            continue
        end = datetime.datetime.fromisoformat(_micro(d["timestamp"])).timestamp()
        latency_ms = d["latency"] / 1e6
        out.append((end - latency_ms / 1000, latency_ms))
    return out


def _micro(stamp: str) -> str:
    """RFC 3339 with nanoseconds (Go's) → what fromisoformat reads: at most microseconds."""
    head, dot, rest = stamp.partition(".")
    if not dot:
        return stamp.replace("Z", "+00:00")
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits):].replace("Z", "+00:00")
    return f"{head}.{digits[:6].ljust(6, '0')}{zone}"


def by_slice(calls: Sequence[tuple[float, float]], slices: Sequence[Slice], guard: float) -> list[list[float]]:
    """Each slice's latencies (ms, sorted): calls that started in it, past its first `guard` s."""
    out: list[list[float]] = [[] for _ in slices]
    for start, latency in calls:
        for i, s in enumerate(slices):
            if s.start + guard <= start < s.end:
                out[i].append(latency)
                break
    return [sorted(x) for x in out]


def compare(slices: Sequence[Slice], latencies: Sequence[list[float]], q: float = 99.0,
            resamples: int = 2000, seed: int = 7) -> dict[str, Any]:
    """The on slices' pooled q-th percentile over the off slices', with a bootstrap 95 %
    interval (slices resampled, on and off alike), and each on slice against the mean of the
    off slices beside it."""
    on = [lat for s, lat in zip(slices, latencies, strict=True) if s.on and lat]
    off = [lat for s, lat in zip(slices, latencies, strict=True) if not s.on and lat]
    if not on or not off:
        raise ValueError("both sides need calls")

    def pooled(groups: Sequence[list[float]]) -> float:
        return percentile(sorted(x for g in groups for x in g), q)

    ratio = pooled(on) / pooled(off)
    rng = random.Random(seed)
    draws = sorted(pooled(rng.choices(on, k=len(on))) / pooled(rng.choices(off, k=len(off)))
                   for _ in range(resamples))
    neighbours = []
    for i, s in enumerate(slices):
        beside = [latencies[j] for j in (i - 1, i + 1) if 0 <= j < len(slices) and not slices[j].on and latencies[j]]
        if s.on and latencies[i] and beside:
            around = sum(percentile(b, q) for b in beside) / len(beside)
            neighbours.append(round(percentile(latencies[i], q) / around, 3))
    return {
        "q": q, "ratio": round(ratio, 3),
        "ci95": [round(draws[int(0.025 * resamples)], 3), round(draws[int(0.975 * resamples) - 1], 3)],
        "on_ms": round(pooled(on), 3), "off_ms": round(pooled(off), 3),
        "on_calls": sum(len(g) for g in on), "off_calls": sum(len(g) for g in off),
        "slice_ratios": neighbours,
    }
