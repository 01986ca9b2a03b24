"""The on/off slicing (harness/interleaved.py) that bench/online_feedback.py measures Recommend
beside Feedback with: each call lands in the slice it started in, a slice's first seconds are
left out, and the ratio compares the pooled percentiles of the two sides."""

from __future__ import annotations

import datetime

import pytest

from harness import interleaved
from harness.interleaved import Slice


def _detail(end: float, latency_ms: float, error: str = "") -> dict[str, object]:
    stamp = datetime.datetime.fromtimestamp(end, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return {"timestamp": f"{stamp}123Z", "latency": int(latency_ms * 1e6), "error": error, "status": "OK"}


def test_a_call_belongs_to_the_slice_it_started_in_not_the_one_it_ended_in() -> None:
    t0 = 1_800_000_000.0
    slices = [Slice(t0, t0 + 2, False), Slice(t0 + 2, t0 + 4, True)]
    details = [
        _detail(t0 + 2.1, 300.0),  # started at t0 + 1.8: the off slice's
        _detail(t0 + 3.0, 5.0),  # started and ended in the on slice
        _detail(t0 + 2.3, 5.0),  # started at t0 + 2.295: inside the on slice's guard
        _detail(t0 + 1.0, 1.0, error="deadline"),  # failed calls carry no latency to compare
    ]
    calls = interleaved.call_starts(details)
    assert len(calls) == 3
    assert calls[0][0] == pytest.approx(t0 + 1.8, abs=1e-5)
    assert interleaved.by_slice(calls, slices, guard=0.5) == [[300.0], [5.0]]


def test_the_ratio_is_of_pooled_percentiles_and_its_interval_holds_it() -> None:
    slices = [Slice(float(i), i + 1.0, i % 2 == 1) for i in range(7)]
    off = [float(x) for x in range(1, 101)]
    latencies = [[2 * x for x in off] if s.on else list(off) for s in slices]
    result = interleaved.compare(slices, latencies, 99.0, resamples=200)
    # the 99th percentile of the 300 calls on (each latency thrice) and of the 400 off
    assert result["on_ms"] == 200.0 and result["off_ms"] == 99.0
    assert result["ratio"] == round(200.0 / 99.0, 3)
    assert result["ci95"][0] <= result["ratio"] <= result["ci95"][1]
    assert result["slice_ratios"] == [2.0, 2.0, 2.0]  # 100 calls each: 198 against 99
    assert result["on_calls"] == 300 and result["off_calls"] == 400


def test_a_side_without_calls_is_refused() -> None:
    slices = [Slice(0.0, 1.0, False), Slice(1.0, 2.0, True)]
    with pytest.raises(ValueError, match="both sides"):
        interleaved.compare(slices, [[1.0], []])
