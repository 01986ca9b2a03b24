"""The worker's side of the control channel: the supervisor's prepare/commit/abort for
all-or-nothing reloads, and the worker's own reload requests forwarded to the supervisor.

Prepare, commit and switch run one at a time, in the order they arrived, on one apply
thread; an abort is noted at once by the receiving thread, so a prepare that is still
running when its transaction is aborted drops its version as soon as it finishes instead of
leaving an aborted version loaded."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import assert_never

from reco_sidecar.artifact import checksums
from reco_sidecar.common import logs, priority
from reco_sidecar.common.errors import ErrorKind, RecoError, Unavailable
from reco_sidecar.common.versions import VersionSpec
from reco_sidecar.experiments.live import LiveExperiments
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.manager.registry import ModelRegistry
from reco_sidecar.ranking.live import LiveRules
from reco_sidecar.runtime import wire as m
from reco_sidecar.runtime.channel import Channel
from reco_sidecar.runtime.worker.experiments import ExperimentsApplier
from reco_sidecar.runtime.worker.rules import RulesApplier
from reco_sidecar.runtime.worker.stop import StopReason
from reco_sidecar.runtime.worker.topology import WorkerTopology
from reco_sidecar.serving import tracing
from reco_sidecar.serving.contracts import ExperimentsOutcome, ReloadOutcome, RulesOutcome, WorkerAddress

log = logs.get(__name__)
_Answer = m.ReloadDone | m.ReloadRefused | m.ExperimentsDone | m.RulesDone
# A worker's part in a reload, as a span in the Reload's trace.
STEP_NAMES = {m.Prepare: "reload.prepare", m.Commit: "reload.commit", m.Switch: "reload.switch"}


class WorkerControl:
    # This process's tracing (set once serving is built, before `start`); None: off.
    traces: tracing.Tracing | None = None
    def __init__(self, channel: Channel, registry: ModelRegistry, topology: WorkerTopology,
                 events: queue.SimpleQueue[StopReason], drain_timeout: float,
                 experiments: LiveExperiments | None = None, reload_timeout: float = 600.0,
                 rules: LiveRules | None = None) -> None:
        self._channel = channel
        self._rules = RulesApplier(rules, channel.send) if rules is not None else None
        self._registry = registry
        self._experiments = (ExperimentsApplier(registry, experiments, channel.send)
                             if experiments is not None else None)
        self._topology = topology
        self._events = events
        self._drain_timeout = drain_timeout
        # The supervisor answers every request it accepted (it fails a reload that outlives
        # --reload-timeout); this only bounds an answer lost with it, with room for a queued one.
        self._answer_timeout = 2 * reload_timeout + 60.0
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[_Answer]] = {}
        # (model, txn): each model's coordinator numbers its own transactions.
        self._aborted: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[m.Prepare | m.Commit | m.Switch | m.PrepareExperiments
                                      | m.CommitExperiments | m.SetExperiments] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        self._applier = threading.Thread(target=self._apply_loop, name="control-apply", daemon=True)

    def start(self) -> None:
        self._applier.start()
        self._thread.start()

    def send(self, message: m.ToSupervisor) -> bool:
        return self._channel.send(message)

    # Reloader protocol, called from an RPC thread.
    def reload(self, model: str, version: VersionSpec) -> ReloadOutcome:
        # Called in the Reload's context (asyncio.to_thread copies it): its span goes with the
        # request, so that every worker's prepare and commit join the caller's trace.
        parent = tracing.traceparent()
        reply = self._ask(lambda request_id: m.ReloadRequest(request_id, version, model, parent))
        match reply:
            case m.ReloadDone(_, old, new, load_seconds, workers):
                return ReloadOutcome(old, new, load_seconds, workers)
            case m.ReloadRefused(_, kind, message, field):
                raise kind.error(message, field)
            case m.ExperimentsDone() | m.RulesDone():
                raise AssertionError("another answer to a model reload")
            case _:
                assert_never(reply)

    def reload_experiments(self) -> ExperimentsOutcome:
        """Asks the supervisor to read the experiments file again; returns once every worker
        serves it, raises (naming the field) when the file is refused."""
        parent = tracing.traceparent()  # the call's span: every worker's part joins its trace
        reply = self._ask(lambda request_id: m.ReloadExperimentsRequest(request_id, parent))
        match reply:
            case m.ExperimentsDone(_, generation, experiments, workers):
                return ExperimentsOutcome(generation, experiments, workers)
            case m.ReloadRefused(_, kind, message, field):
                raise kind.error(message, field)
            case m.ReloadDone() | m.RulesDone():
                raise AssertionError("another answer to an experiments reload")
            case _:
                assert_never(reply)

    def reload_rules(self) -> RulesOutcome:
        """Asks the supervisor to read the rules file again; returns once every worker serves
        it, raises (naming the field) when the file is refused."""
        parent = tracing.traceparent()  # the call's span: every worker's part joins its trace
        reply = self._ask(lambda request_id: m.ReloadRulesRequest(request_id, parent))
        match reply:
            case m.RulesDone(_, generation, rule_sets, workers):
                return RulesOutcome(generation, rule_sets, workers)
            case m.ReloadRefused(_, kind, message, field):
                raise kind.error(message, field)
            case m.ReloadDone() | m.ExperimentsDone():
                raise AssertionError("another answer to a rules reload")
            case _:
                assert_never(reply)

    def _ask(self, build: Callable[[int], m.ToSupervisor]) -> _Answer:
        request_id = next(self._ids)
        future: Future[_Answer] = Future()
        self._pending[request_id] = future
        try:
            if not self._channel.send(build(request_id)):
                raise Unavailable("the supervisor is gone")
            try:
                return future.result(timeout=self._answer_timeout)
            except TimeoutError:
                raise Unavailable("reload did not finish in time") from None
        finally:
            self._pending.pop(request_id, None)

    def _run(self) -> None:
        while True:
            try:
                message = self._channel.recv(m.decode_to_worker)
            except ValueError as e:
                log.error("control_message_invalid", error=str(e))
                continue
            if message is None:
                self._events.put(StopReason.SUPERVISOR_GONE)
                for future in list(self._pending.values()):
                    future.set_result(m.ReloadRefused(0, ErrorKind.UNAVAILABLE, "the supervisor is gone", None))
                return
            self._dispatch(message)

    def _dispatch(self, message: m.ToWorker) -> None:
        match message:
            case m.ReloadDone() | m.ReloadRefused() | m.ExperimentsDone() | m.RulesDone():
                future = self._pending.get(message.id)
                if future is not None and not future.done():
                    future.set_result(message)
            case m.Prepare() | m.Commit() | m.Switch():
                self._work.put(message)
            case m.Abort(txn, version, model):
                with self._lock:
                    self._aborted.add((model, txn))
                self._manager(model).abort(version)
            case m.PrepareExperiments() | m.CommitExperiments() | m.SetExperiments():
                self._work.put(message)
            case m.AbortExperiments(generation):
                if self._experiments is not None:
                    self._experiments.abort(generation)
            case m.PrepareRules() | m.CommitRules() | m.AbortRules() | m.SetRules():
                # On the receiving thread: a rule change waits for no model load.
                if self._rules is not None:
                    with self._file_step(message, "rules", "reco.rules.generation"):
                        self._rules.apply(message)
                elif not isinstance(message, m.AbortRules):  # a worker without rules has nothing to stage
                    self.send(m.RulesPrepared(message.generation) if isinstance(message, m.PrepareRules)
                              else m.RulesApplied(message.generation))
            case m.MarkFailed(version, reason, model):
                self._manager(model).mark_failed(version, reason)
            case m.Workers(workers):
                self._topology.update([WorkerAddress(w.pid, w.address) for w in workers])
            case m.StoreStatus():
                self._topology.update_store(message)
            case m.Shutdown(fast):
                self._events.put(StopReason.SHUTDOWN_FAST if fast else StopReason.SHUTDOWN)
            case _:
                assert_never(message)

    def _manager(self, model: str) -> ModelManager:
        return self._registry.get(model)

    def _apply_loop(self) -> None:
        # Loads run on this thread (and on the threads it starts): at the workers' own priority,
        # two workers loading at once took the cores from their event loops for a few hundred ms.
        priority.lower_this_thread()
        while True:
            message = self._work.get()
            if isinstance(message, m.PrepareExperiments | m.CommitExperiments | m.SetExperiments):
                if self._experiments is not None:
                    with self._file_step(message, "experiments", "reco.experiments.generation"):
                        self._experiments.apply(message)
            else:
                self._apply(message)

    def _file_step(self, message: m.PrepareRules | m.CommitRules | m.AbortRules | m.SetRules | m.PrepareExperiments
                   | m.CommitExperiments | m.SetExperiments, kind: str, attribute: str) -> tracing.Step:
        """This worker's part in a traced rules or experiments rollout, as a span of the
        reload call's trace (`rules.prepare`, `rules.commit`, `rules.set`...); nothing when the
        call was not traced, or for an abort."""
        traceparent = getattr(message, "traceparent", "")
        if self.traces is None or not traceparent:
            return tracing.NO_STEP
        step = type(message).__name__.removesuffix(kind.capitalize()).lower()  # PrepareRules -> prepare
        return self.traces.remote_step(f"{kind}.{step}", traceparent, {attribute: message.generation})

    def _apply(self, message: m.Prepare | m.Commit | m.Switch) -> None:
        with self._lock:
            if (message.model, message.txn) in self._aborted:
                return
        traces = self.traces
        if traces is None or not message.traceparent:
            answer = self._applied(message, tracing.NO_STEP)
        else:
            step = traces.remote_step(STEP_NAMES[type(message)], message.traceparent, {
                "reco.model": message.model or self._registry.default, "reco.model.version": message.version,
                "reco.reload.txn": message.txn})
            with step:
                answer = self._applied(message, step)
        # Sent once the span has ended: the supervisor commits only after every worker's
        # Prepared, so each prepare span ends before any commit span starts.
        if answer is not None:
            self.send(answer)

    def _applied(self, message: m.Prepare | m.Commit | m.Switch, step: tracing.Step
                 ) -> m.ToSupervisor | None:
        """Carries out `message`; the answer to send, None when there is none (aborted)."""
        started = time.perf_counter()
        txn, version = message.txn, message.version
        key = (message.model, txn)
        manager = self._manager(message.model)
        if isinstance(message, m.Prepare | m.Switch):
            # The supervisor's verification hashed these very files (same identity): re-hashing
            # them here would take a core from the requests this worker serves meanwhile.
            for d in message.digests:
                checksums.remember((d.dev, d.ino, d.size, d.mtime_ns, d.ctime_ns), d.sha256)
        try:
            match message:
                case m.Prepare():
                    manager.prepare(version)
                    with self._lock:
                        aborted = key in self._aborted
                    if aborted:
                        # The abort overtook this prepare: drop what it loaded.
                        manager.abort(version)
                        step.set("reco.reload.aborted", True)
                        return None
                    return m.Prepared(txn, version, time.perf_counter() - started, message.model)
                case m.Commit():
                    manager.commit(version, drain_timeout=self._drain_timeout)
                    return m.Committed(txn, version, message.model)
                case m.Switch():
                    manager.prepare(version)
                    manager.commit(version, drain_timeout=self._drain_timeout)
                    return m.Committed(txn, version, message.model)
                case _:
                    assert_never(message)
        except Exception as e:  # a bug or an odd file must fail the reload, not the worker
            error = str(e) if isinstance(e, RecoError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, RecoError):
                log.exception("control_apply_failed", kind=message.TAG, version=version)
            step.failed(error[:4000])
            if isinstance(message, m.Prepare):
                return m.PrepareFailed(txn, version, error[:4000], message.model)
            return m.CommitFailed(txn, version, error[:4000], message.model)
