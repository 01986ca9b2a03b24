"""Prometheus metrics for the whole process tree, in prometheus_client's multiprocess mode.

Every process (supervisor and workers) writes its values to files in a private directory
that the supervisor creates before it forks; the supervisor's one HTTP endpoint sums them.
prometheus_client decides between in-memory and file-backed values when it is first
imported, so this module imports it lazily, after `Exporter.start` has set
PROMETHEUS_MULTIPROC_DIR, and the other modules only call the functions below.
Without --metrics-port every recording function is a no-op.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import errno
import os
import pathlib
import shutil
import tempfile
import threading
from typing import Any

import numpy as np

from reco_sidecar.artifact import layout
from reco_sidecar.common import logs
from reco_sidecar.common.errors import PortInUse
from reco_sidecar.serving.observe import BATCH_BUCKETS, LATENCY_BUCKETS, Tally

log = logs.get(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
RATIO_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CORRELATION_BUCKETS = (-0.5, 0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
RELOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        # Registered nowhere: in multiprocess mode the exporter reads the files, not a registry.
        none: Any = None
        self.rpcs = Counter("reco_rpcs", "Recommender RPCs finished, by method and status code.",
                            ["method", "code"], registry=none)
        self.rpc_seconds = Histogram("reco_rpc_duration_seconds", "Recommender RPC latency in the server.",
                                     ["method", "code"], buckets=LATENCY_BUCKETS, registry=none)
        self.responses = Counter(
            "reco_responses", "Answers by where their items came from (model, fold_in, popular, ann; "
            "error for a BatchRecommend user that could not be answered). popular is the fallback.",
            ["method", "source"], registry=none)
        self.batch_size = Histogram("reco_batch_size", "Recommend calls scored together by the dynamic batcher.",
                                    buckets=BATCH_BUCKETS, registry=none)
        self.batch_waits = Counter("reco_batch_waits", "Batches whose scoring waited for more Recommend calls "
                                   "to join (--batch-wait-policy).", registry=none)
        # One series per live worker (pid label): a reload in progress shows mixed versions.
        self.model_version = Gauge("reco_model_version", "Model version each worker serves.", ["model"],
                                   multiprocess_mode="liveall", registry=none)
        # Workers memory-map the same files, so the pages are shared: max, not sum.
        self.model_bytes = Gauge("reco_model_bytes", "Bytes of the serving model's arrays and ANN index.",
                                 ["model"], multiprocess_mode="livemax", registry=none)
        self.reloads = Counter("reco_reloads", "Reloads finished, by outcome (ok or a status code name).",
                               ["outcome"], registry=none)
        self.reload_seconds = Histogram("reco_reload_duration_seconds",
                                        "Successful reloads, from request to every worker serving.",
                                        buckets=RELOAD_BUCKETS, registry=none)
        self.worker_exits = Counter("reco_worker_exits", "Worker processes that exited (restarts included).",
                                    registry=none)
        self.worker_timeouts = Counter("reco_worker_timeouts",
                                       "Workers killed and replaced for missing their heartbeat deadline.",
                                       registry=none)
        # Online learning (docs/online.md). Apply time is measured by the worker that took the
        # call: from reading the message to the learner's answer, which comes only after the
        # events are in the table every worker reads.
        self.feedback_apply_seconds = Histogram(
            "reco_feedback_apply_seconds", "Feedback messages, from the worker receiving one to its events being "
            "journaled and visible in the online table (accepted messages only).",
            buckets=LATENCY_BUCKETS, registry=none)
        self.feedback_events = Counter("reco_feedback_events", "Feedback events answered, by outcome "
                                       "(accepted, duplicate).", ["outcome"], registry=none)
        # Written by the learner, the stream's one reader in this sidecar.
        self.stream_lag_seconds = Gauge(
            "reco_feedback_stream_lag_seconds", "With --online-stream: the age difference between the stream's "
            "newest entry and the last one this sidecar's learner journaled (0: caught up).",
            multiprocess_mode="livemax", registry=none)
        self.learner_exits = Counter("reco_learner_exits",
                                     "Online learner processes that exited (heartbeat timeouts included); "
                                     "each is restarted.", registry=none)
        self.learner_timeouts = Counter("reco_learner_timeouts",
                                        "Online learners killed and replaced for missing their heartbeat deadline.",
                                        registry=none)
        self.arm_responses = Counter("reco_arm_responses", "Recommend answers by experiment, arm and source.",
                                     ["experiment", "arm", "source"], registry=none)
        self.shadow_overlap = Histogram("reco_shadow_overlap",
                                        "A shadow arm's top-n overlap with the served arm's (0..1).",
                                        ["experiment", "arm"], buckets=RATIO_BUCKETS, registry=none)
        self.shadow_correlation = Histogram("reco_shadow_rank_correlation",
                                            "Spearman rank correlation of a shadow arm with the served arm over "
                                            "the items both returned (-1..1).",
                                            ["experiment", "arm"], buckets=CORRELATION_BUCKETS, registry=none)
        self.shadow_dropped = Counter("reco_shadow_dropped",
                                      "Shadow rankings skipped because the shadow queue was full.",
                                      ["experiment", "arm"], registry=none)
        self.experiment_reloads = Counter("reco_experiment_reloads",
                                          "Experiments file rollouts, by outcome (ok, refused).", ["outcome"],
                                          registry=none)
        self.versions_failed = Counter("reco_versions_failed",
                                       "Model versions found bad (verification, load or reload failure).",
                                       registry=none)
        # Set by the supervisor, which runs the store follower and reads its status lines.
        self.store_follower_up = Gauge("reco_store_follower_up",
                                       "1 while the model store follower process runs (0: exited, restarting).",
                                       multiprocess_mode="livemax", registry=none)
        self.store_error = Gauge("reco_store_error",
                                 "1 while the store follower's last look at the store or download failed.",
                                 multiprocess_mode="livemax", registry=none)


_lock = threading.Lock()
_state: dict[str, Any] = {"metrics": None, "decided": False, "model": {}}


def _get() -> _Metrics | None:
    if _state["decided"]:
        return _state["metrics"]  # type: ignore[no-any-return]
    with _lock:
        if not _state["decided"]:
            _state["metrics"] = _Metrics() if os.environ.get(ENV) else None
            _state["decided"] = True
    return _state["metrics"]  # type: ignore[no-any-return]


# -- recording, from any process of the tree ------------------------------------------------------

def flush(tally: Tally) -> None:
    """Adds what a worker counted in process since its last flush (the RPC tally and the
    experiment counts) to the multiprocess files: a few file-backed writes per second
    instead of several per call."""
    m = _get()
    if m is None:
        return
    _flush_experiments(m)
    _flush_feedback(m)
    if tally.empty():
        return
    for (method, code), s in tally.rpcs.items():
        m.rpcs.labels(method, code).inc(s.count)
        hist = m.rpc_seconds.labels(method, code)
        # Histogram.observe adds to one (non-cumulative) bucket and to the sum; add the
        # same amounts in bulk. The bucket list has the +Inf bucket last, as the tally does.
        hist._sum.inc(s.seconds)
        for i, n in enumerate(s.buckets):
            if n:
                hist._buckets[i].inc(n)
    for (method, source), n in tally.responses.items():
        m.responses.labels(method, source).inc(n)
    if tally.batch_sum:
        m.batch_size._sum.inc(tally.batch_sum)
        for i, n in enumerate(tally.batch_sizes):
            if n:
                m.batch_size._buckets[i].inc(n)
    if tally.batch_waits:
        m.batch_waits.inc(tally.batch_waits)


def model_bytes(model: Any) -> int:
    """Bytes of every array the model holds, plus its ANN index file."""
    total = sum(getattr(model, f.name).nbytes for f in dataclasses.fields(model)
                if isinstance(getattr(model, f.name), np.ndarray))
    with contextlib.suppress(OSError):
        total += (pathlib.Path(model.path) / layout.ANN_INDEX).stat().st_size
    return int(total)


def track_model(model: Any) -> None:
    """Publishes the serving model; cheap to call often, it only writes when the model changed."""
    m = _get()
    if m is None or model is None or _state["model"].get(model.name) is model:
        return
    _state["model"][model.name] = model
    m.model_version.labels(model.name).set(model.version)
    m.model_bytes.labels(model.name).set(model_bytes(model))


def reload_finished(outcome: str, seconds: float | None = None) -> None:
    m = _get()
    if m is None:
        return
    m.reloads.labels(outcome).inc()
    if seconds is not None:
        m.reload_seconds.observe(seconds)


# Experiment metrics are counted in process like the RPC tally and written by `flush` about
# once a second: an answer's arm was a file-backed write per call. They come from the event
# loop (Recommend), the scoring threads (BatchRecommend chunks) and the shadow thread: a lock.
@dataclasses.dataclass
class _Experiments:
    served: dict[tuple[str, str, str], int] = dataclasses.field(default_factory=dict)
    overlaps: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    correlations: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    dropped: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)


_experiments_lock = threading.Lock()
_experiments = _Experiments()


def arm_served(experiment: str, arm: str, source: str) -> None:
    if _get() is None:
        return
    key = (experiment, arm, source)
    with _experiments_lock:
        _experiments.served[key] = _experiments.served.get(key, 0) + 1


def shadow_compared(experiment: str, arm: str, overlap: float, correlation: float | None) -> None:
    if _get() is None:
        return
    with _experiments_lock:
        _experiments.overlaps.append((experiment, arm, overlap))
        if correlation is not None:
            _experiments.correlations.append((experiment, arm, correlation))


def shadow_dropped(experiment: str, arm: str) -> None:
    if _get() is None:
        return
    key = (experiment, arm)
    with _experiments_lock:
        _experiments.dropped[key] = _experiments.dropped.get(key, 0) + 1


def _flush_experiments(m: _Metrics) -> None:
    global _experiments
    with _experiments_lock:
        taken, _experiments = _experiments, _Experiments()
    for (experiment, arm, source), n in taken.served.items():
        m.arm_responses.labels(experiment, arm, source).inc(n)
    for experiment, arm, overlap in taken.overlaps:
        m.shadow_overlap.labels(experiment, arm).observe(overlap)
    for experiment, arm, correlation in taken.correlations:
        m.shadow_correlation.labels(experiment, arm).observe(correlation)
    for (experiment, arm), n in taken.dropped.items():
        m.shadow_dropped.labels(experiment, arm).inc(n)


# Feedback's apply times and outcomes: counted in process, written by `flush` with the rest.
@dataclasses.dataclass
class _Feedback:
    buckets: list[int] = dataclasses.field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    seconds: float = 0.0
    accepted: int = 0
    duplicates: int = 0


_feedback_lock = threading.Lock()
_feedback = _Feedback()


def feedback_applied(seconds: float, accepted: int, duplicates: int) -> None:
    """A Feedback message the learner answered OK, `seconds` after the worker read it."""
    if _get() is None:
        return
    with _feedback_lock:
        # Prometheus counts a value in the first bucket whose bound is >= it.
        _feedback.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        _feedback.seconds += seconds
        _feedback.accepted += accepted
        _feedback.duplicates += duplicates


def _flush_feedback(m: _Metrics) -> None:
    global _feedback
    with _feedback_lock:
        taken, _feedback = _feedback, _Feedback()
    if not any(taken.buckets):
        return
    m.feedback_apply_seconds._sum.inc(taken.seconds)
    for i, n in enumerate(taken.buckets):
        if n:
            m.feedback_apply_seconds._buckets[i].inc(n)
    m.feedback_events.labels("accepted").inc(taken.accepted)
    m.feedback_events.labels("duplicate").inc(taken.duplicates)


def stream_lag(seconds: float) -> None:
    """The learner's stream reader, after each read; written only when it changed."""
    m = _get()
    if m is None or _store_shown.get("lag") == seconds:
        return
    _store_shown["lag"] = seconds
    m.stream_lag_seconds.set(seconds)


def experiments_reloaded(outcome: str) -> None:
    m = _get()
    if m is not None:
        m.experiment_reloads.labels(outcome).inc()


def worker_timeout() -> None:
    m = _get()
    if m is not None:
        m.worker_timeouts.inc()


def learner_timeout() -> None:
    m = _get()
    if m is not None:
        m.learner_timeouts.inc()


def learner_dead(pid: int) -> None:
    """Drops the dead learner's live gauges (its stream lag) and counts its exit."""
    m = _get()
    if m is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
    m.learner_exits.inc()


def version_failed() -> None:
    m = _get()
    if m is not None:
        m.versions_failed.inc()


_store_shown: dict[str, object] = {}


def store_state(running: bool, failing: bool) -> None:
    """The follower's state as the supervisor sees it on each tick (its process up; its last
    status an error); written only when it changes."""
    m = _get()
    if m is None:
        return
    state = (running, failing)
    if _store_shown.get("state") == state:
        return
    _store_shown["state"] = state
    m.store_follower_up.set(1 if state[0] else 0)
    m.store_error.set(1 if state[1] else 0)


def process_dead(pid: int) -> None:
    """Drops a dead worker's live gauges; its counters stay in the sums."""
    m = _get()
    if m is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
    m.worker_exits.inc()


# -- the supervisor's endpoint -----------------------------------------------------------------------

class Exporter:
    """The multiprocess directory and the /metrics HTTP server, owned by the supervisor."""

    def __init__(self, directory: pathlib.Path | None, server: Any = None, thread: threading.Thread | None = None):
        self.directory = directory
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int | None:
        return int(self._server.server_port) if self._server is not None else None

    @classmethod
    def start(cls, host: str, port: int | None) -> Exporter:
        """Call before forking any worker and before anything records a metric.

        Raises PortInUse when the metrics port is taken.
        """
        _state.update(metrics=None, decided=False, model={})
        if port is None:
            # A directory inherited from our own environment must not collect our values.
            os.environ.pop(ENV, None)
            return cls(None)
        directory = pathlib.Path(tempfile.mkdtemp(prefix="reco-metrics-"))
        os.environ[ENV] = str(directory)
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server, values

        # Decided at import: redo it in case something imported the library earlier.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
        # The server thread lives on while the supervisor forks (re)started workers. That is
        # safe because the thread holds nothing a worker needs: fork re-creates the GIL and
        # the import lock, the request handler never logs, and collecting reads the files
        # without prometheus_client's value lock (which only the supervisor's main thread,
        # the one that forks, takes). The child closes its copy of the listening socket so a
        # worker never keeps the metrics port bound.
        try:
            server, thread = start_http_server(port, addr=host.strip("[]"), registry=registry)
        except OSError as e:
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop(ENV, None)
            if e.errno == errno.EADDRINUSE:
                raise PortInUse(f"metrics port {host}:{port} is already in use") from None
            raise
        exporter = cls(directory, server, thread)
        os.register_at_fork(after_in_child=exporter._forget_in_child)
        log.info("metrics_serving", host=host, port=exporter.port, directory=str(directory))
        return exporter

    def _forget_in_child(self) -> None:
        if self._server is not None:
            self._server.socket.close()
            self._server = None
        self.directory = None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
