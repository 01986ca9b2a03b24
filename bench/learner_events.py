"""The learner's CPU per Feedback event, in process (no gRPC, no journal): what recording and
publishing events costs runtime/learner/state.py and table.py on the benchmark model, for a
mix of click events only and for mixes where a share of the events are impressions (a shown
type, weight 0: counted for the impressions rule, docs/ranking.md, never solved).

Each round runs every mix on a fresh state and table (--online-max-users' default size),
batches of 100 events for random users and items as bench/online_feedback.py's senders send
them, and measures the process's CPU seconds; ratios are to the click-only mix of the same
round, and the figures are the medians over rounds.

    OMP_NUM_THREADS=1 python -m bench.learner_events     # writes bench/results/learner_events.json
"""

from __future__ import annotations

import dataclasses
import pathlib
import random
import statistics
import tempfile
import time
from typing import Any

from bench import common
from harness import bench_model, scaffold
from reco_sidecar.artifact.loader import open_model
from reco_sidecar.engine.eventtypes import EventType
from reco_sidecar.engine.model import Model
from reco_sidecar.online.events import Event
from reco_sidecar.runtime.learner.state import VersionState
from reco_sidecar.runtime.learner.table import TableWriter

BATCH = 100
WARMUP_BATCHES = 20
# The sidecar's --online-max-users default: the table size the learner really writes into.
MAX_USERS = 100_000
TYPES = {"view": EventType(0.1, True), "click": EventType(0.3, True), "like": EventType(0.7, True),
         "share": EventType(1.0, True), "shown": EventType(0.0, False)}


def _typed(model: Model) -> Model:
    """The model with the event types `train --weights ...,shown=0` records, and no as_of."""
    return dataclasses.replace(model, info=dataclasses.replace(model.info, event_types=TYPES, as_of=None))


def _batches(model: Model, shown_share: float, batches: int, seed: int) -> list[list[Event]]:
    rng = random.Random(seed)
    users, items = model.users.ids, model.items.ids
    out, k = [], 0
    for _ in range(batches):
        batch = []
        for _ in range(BATCH):
            k += 1
            kind = "shown" if rng.random() < shown_share else "click"
            batch.append(Event(f"e{k}", users[rng.randrange(len(users))], items[rng.randrange(len(items))], kind,
                               None, 2e9))
        out.append(batch)
    return out


def _cpu_seconds(model: Model, batches: list[list[Event]]) -> float:
    with tempfile.TemporaryDirectory(prefix="learner-events-") as d:
        table = TableWriter(pathlib.Path(d) / "t.table", 1, model.factors, MAX_USERS)
        state = VersionState(model, table)
        for batch in batches[:WARMUP_BATCHES]:
            state.publish(state.add(batch))
        started = time.process_time()
        for batch in batches[WARMUP_BATCHES:]:
            state.publish(state.add(batch))
        cpu = time.process_time() - started
        table.close()
    return cpu


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__, time_limit=900)
    p.add_argument("--batches", type=int, default=400, help="batches of 100 events per mix and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--shown-shares", default="0.5,0.9", help="shares of shown events besides clicks only")
    args = p.parse_args(argv)
    shares = [0.0, *(float(s) for s in args.shown_shares.split(","))]

    def body(bench: bench_model.BenchModel, deadline: scaffold.Deadline, result: dict[str, Any]) -> None:
        model = _typed(open_model(bench.version_dir))
        result["config"] = vars(args) | {"work_dir": str(args.work_dir), "out": str(args.out),
                                         "batch": BATCH, "warmup_batches": WARMUP_BATCHES, "max_users": MAX_USERS}
        events = (args.batches - WARMUP_BATCHES) * BATCH
        rounds: list[dict[str, float]] = []
        for r in range(args.rounds):
            cpu = {share: _cpu_seconds(model, _batches(model, share, args.batches, seed=r)) for share in shares}
            rounds.append({f"{share:g}": round(events / cpu[share], 1) for share in shares})
            scaffold.log("learner_events_round", round=r, **{f"shown_{k}": v for k, v in rounds[-1].items()})
        result["events_per_cpu_s"] = rounds
        clicks = [x["0"] for x in rounds]
        summary: dict[str, Any] = {"clicks_only_events_per_cpu_s": statistics.median(clicks)}
        for share in shares[1:]:
            key = f"{share:g}"
            # A shown event's CPU as a share of a click's, from cpu = n·((1−s)·click + s·shown).
            shown_vs_click = [((1 / x[key]) - (1 - share) / x["0"]) / share * x["0"] for x in rounds]
            summary[f"shown_{key}"] = {
                "events_per_cpu_s": statistics.median(x[key] for x in rounds),
                "ratio_to_clicks_only": round(statistics.median(x[key] / x["0"] for x in rounds), 3),
                "shown_event_cpu_vs_click": round(statistics.median(shown_vs_click), 3),
            }
        result["summary"] = summary
        result["note"] = "CPU seconds of this process (process_time), so other work on the machine counts less"

    return common.run("learner_events", args, body)


if __name__ == "__main__":
    raise SystemExit(main())
