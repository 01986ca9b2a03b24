"""Every message that crosses a process boundary, one frozen dataclass each, and their one
encoding: a msgpack array `[tag, field, ...]` in field order.

Four boundaries: the supervisor and each worker (`ToWorker`, `ToSupervisor`), the
supervisor and its verifier helper (`ToVerifier`, `FromVerifier`), the supervisor and the
model store's follower process (`ToFollower`, `FromFollower`), the workers and the supervisor
and the online learner (`ToLearner`, `FromLearner`, framed by runtime/learner/framing.py). Errors cross as `ErrorKind`
values, never as gRPC codes; a version spec crosses as a `VersionSpec` (`latest` or a
positive number), parsed once where it entered the sidecar. Decoding checks every field's
type, so a malformed message is a ValueError at the boundary instead of a KeyError deep in
a handler, and a number that is no version is refused like everywhere else."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from reco_sidecar.common.errors import ErrorKind
from reco_sidecar.common.versions import LATEST, MAX_DIGITS, Latest, VersionSpec
from reco_sidecar.online.events import Event
from reco_sidecar.store.status import StoreStatus as StoreStatus

# A frame larger than this is refused by the sender (FrameTooLarge) before it reaches the
# socket: a SOCK_SEQPACKET datagram must fit the socket's buffer (about 208 KiB by default).
# Anything that can be larger (an experiments file) travels as a Payload instead.
MAX_FRAME = 128 * 1024

# -- supervisor -> worker --------------------------------------------------------------------------


@dataclass(frozen=True)
class FileDigest:
    """A file's sha256 the supervisor's verification computed, keyed by the file's identity
    (checksums.Key): the worker hashes only the files it does not find here, or finds
    changed, instead of hashing the whole version a third time beside the requests it
    serves."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str


@dataclass(frozen=True)
class Prepare:
    """Load, validate and warm `version` beside the serving one."""

    TAG: ClassVar[str] = "prepare"
    txn: int
    version: int
    model: str = ""
    digests: tuple[FileDigest, ...] = ()
    # The W3C traceparent of the Reload's span when the call is traced and sampled, else "":
    # the worker records its part as a child span of it (serving/tracing.py, `remote_step`).
    traceparent: str = ""


@dataclass(frozen=True)
class Commit:
    """Serve the prepared `version`; answer once requests on the old one have finished."""

    TAG: ClassVar[str] = "commit"
    txn: int
    version: int
    model: str = ""
    # The W3C traceparent of the Reload's span when the call is traced and sampled, else "":
    # the worker records its part as a child span of it (serving/tracing.py, `remote_step`).
    traceparent: str = ""


@dataclass(frozen=True)
class Switch:
    """Prepare and commit in one step: for a worker that booted with an older version."""

    TAG: ClassVar[str] = "switch"
    txn: int
    version: int
    model: str = ""
    digests: tuple[FileDigest, ...] = ()
    # The W3C traceparent of the Reload's span when the call is traced and sampled, else "":
    # the worker records its part as a child span of it (serving/tracing.py, `remote_step`).
    traceparent: str = ""


@dataclass(frozen=True)
class Abort:
    """Drop what transaction `txn` prepared, also if its prepare is still running."""

    TAG: ClassVar[str] = "abort"
    txn: int
    version: int
    model: str = ""


@dataclass(frozen=True)
class WorkerEntry:
    pid: int
    address: str


@dataclass(frozen=True)
class Workers:
    TAG: ClassVar[str] = "workers"
    workers: tuple[WorkerEntry, ...]


@dataclass(frozen=True)
class Shutdown:
    TAG: ClassVar[str] = "shutdown"
    fast: bool


@dataclass(frozen=True)
class MarkFailed:
    """The supervisor found `version` of `model` bad (its verification refused it, or a reload
    of it failed on some worker): the worker lists it FAILED with `reason` in GetModelStatus,
    as it would a version it failed to load itself, until it prepares that version again."""

    TAG: ClassVar[str] = "mark_failed"
    version: int
    reason: str
    model: str


@dataclass(frozen=True)
class ReloadDone:
    TAG: ClassVar[str] = "reload_done"
    id: int
    old: int
    new: int
    load_seconds: float
    workers: int


@dataclass(frozen=True)
class ReloadRefused:
    TAG: ClassVar[str] = "reload_refused"
    id: int
    kind: ErrorKind
    message: str
    field: str | None


@dataclass(frozen=True)
class Payload:
    """A file the supervisor wrote for the workers (an experiments file): its path, and the
    sha256 and size the reader checks before using a byte of it. Content of any size
    crosses this way; the frame stays small."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class PrepareExperiments:
    """Parse this experiments file (validated by the supervisor) and open the model versions
    its arms pin, beside what serves; answer ExperimentsPrepared or ExperimentsPrepareFailed.
    `syntax` is "toml" or "json"."""

    TAG: ClassVar[str] = "prepare_experiments"
    generation: int
    file: Payload
    syntax: str
    # The W3C traceparent of the reload call whose rollout this is, when that call is traced
    # and sampled, else "": the worker's part is then a span of that trace.
    traceparent: str = ""


@dataclass(frozen=True)
class CommitExperiments:
    """Serve what PrepareExperiments `generation` prepared; answer ExperimentsApplied."""

    TAG: ClassVar[str] = "commit_experiments"
    generation: int
    # The W3C traceparent of the reload call whose rollout this is, when that call is traced
    # and sampled, else "": the worker's part is then a span of that trace.
    traceparent: str = ""


@dataclass(frozen=True)
class AbortExperiments:
    """Drop what PrepareExperiments `generation` prepared, also if it is still running."""

    TAG: ClassVar[str] = "abort_experiments"
    generation: int


@dataclass(frozen=True)
class SetExperiments:
    """Prepare and commit in one step: for a worker that booted with an older file. A worker
    that cannot exits, and its restart boots with the file."""

    TAG: ClassVar[str] = "set_experiments"
    generation: int
    file: Payload
    syntax: str
    # The W3C traceparent of the reload call whose rollout this is, when that call is traced
    # and sampled, else "": the worker's part is then a span of that trace.
    traceparent: str = ""


@dataclass(frozen=True)
class ExperimentsDone:
    TAG: ClassVar[str] = "experiments_done"
    id: int
    generation: int
    experiments: int
    workers: int


@dataclass(frozen=True)
class PrepareRules:
    """Parse this ranking rules file (validated whole by the supervisor; up to 1 MiB, so it
    crosses as a Payload) and stage it beside the rules that serve; answer RulesPrepared or
    RulesPrepareFailed. `syntax` is "toml" or "json"."""

    TAG: ClassVar[str] = "prepare_rules"
    generation: int
    payload: Payload
    syntax: str
    # The W3C traceparent of the reload call whose rollout this is, when that call is traced
    # and sampled, else "": the worker's part is then a span of that trace.
    traceparent: str = ""


@dataclass(frozen=True)
class CommitRules:
    """Serve what PrepareRules `generation` staged; answer RulesApplied."""

    TAG: ClassVar[str] = "commit_rules"
    generation: int
    # The W3C traceparent of the reload call whose rollout this is, when that call is traced
    # and sampled, else "": the worker's part is then a span of that trace.
    traceparent: str = ""


@dataclass(frozen=True)
class AbortRules:
    """Drop what PrepareRules `generation` staged."""

    TAG: ClassVar[str] = "abort_rules"
    generation: int


@dataclass(frozen=True)
class SetRules:
    """Prepare and commit in one step, for a worker that booted with older rules than the
    pool serves; answer RulesApplied."""

    TAG: ClassVar[str] = "set_rules"
    generation: int
    payload: Payload
    syntax: str
    # The W3C traceparent of the reload call whose rollout this is, when that call is traced
    # and sampled, else "": the worker's part is then a span of that trace.
    traceparent: str = ""


@dataclass(frozen=True)
class RulesDone:
    TAG: ClassVar[str] = "rules_done"
    id: int
    generation: int
    rule_sets: int
    workers: int


ToWorker = (Prepare | Commit | Switch | Abort | Workers | Shutdown | ReloadDone | ReloadRefused | SetExperiments
            | PrepareExperiments | CommitExperiments | AbortExperiments
            | ExperimentsDone | MarkFailed | StoreStatus | PrepareRules | CommitRules | AbortRules | SetRules
            | RulesDone)

# -- worker -> supervisor --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int


@dataclass(frozen=True)
class Ready:
    TAG: ClassVar[str] = "ready"
    slot: int
    pid: int
    address: str
    versions: tuple[ModelVersion, ...]
    experiments_generation: int = 0
    rules_generation: int = 0


@dataclass(frozen=True)
class BootFailed:
    TAG: ClassVar[str] = "boot_failed"
    slot: int
    error: str


@dataclass(frozen=True)
class Heartbeat:
    """Sent by the worker's serving loop: `calls` started so far, `in_flight` running now."""

    TAG: ClassVar[str] = "heartbeat"
    slot: int
    calls: int
    in_flight: int


@dataclass(frozen=True)
class ReloadRequest:
    """A client's Reload, forwarded; `version` was parsed by the worker, `model` is a model
    the worker serves."""

    TAG: ClassVar[str] = "reload"
    id: int
    version: VersionSpec
    model: str = ""
    # The W3C traceparent of the worker's span for this Reload ("" when untraced): the
    # supervisor hands it on with the transaction's Prepare, Commit and Switch messages.
    traceparent: str = ""


@dataclass(frozen=True)
class ReloadExperimentsRequest:
    """A client's ReloadExperiments, forwarded: read the experiments file again."""

    TAG: ClassVar[str] = "reload_experiments"
    id: int
    traceparent: str = ""  # the call's span, handed on with the messages of its rollout


@dataclass(frozen=True)
class ExperimentsPrepared:
    TAG: ClassVar[str] = "experiments_prepared"
    generation: int


@dataclass(frozen=True)
class ExperimentsPrepareFailed:
    """`field` names the arm whose pinned version could not be opened."""

    TAG: ClassVar[str] = "experiments_prepare_failed"
    generation: int
    error: str
    field: str


@dataclass(frozen=True)
class ExperimentsApplied:
    """The worker serves experiments generation `generation` now."""

    TAG: ClassVar[str] = "experiments_applied"
    generation: int


@dataclass(frozen=True)
class Prepared:
    TAG: ClassVar[str] = "prepared"
    txn: int
    version: int
    load_seconds: float
    model: str = ""


@dataclass(frozen=True)
class PrepareFailed:
    TAG: ClassVar[str] = "prepare_failed"
    txn: int
    version: int
    error: str
    model: str = ""


@dataclass(frozen=True)
class Committed:
    TAG: ClassVar[str] = "committed"
    txn: int
    version: int
    model: str = ""


@dataclass(frozen=True)
class CommitFailed:
    TAG: ClassVar[str] = "commit_failed"
    txn: int
    version: int
    error: str
    model: str = ""


@dataclass(frozen=True)
class ReloadRulesRequest:
    """A client's ReloadRules, forwarded: read the rules file again."""

    TAG: ClassVar[str] = "reload_rules"
    id: int
    traceparent: str = ""  # the call's span, handed on with the messages of its rollout


@dataclass(frozen=True)
class RulesPrepared:
    TAG: ClassVar[str] = "rules_prepared"
    generation: int


@dataclass(frozen=True)
class RulesPrepareFailed:
    """`field` names what the worker could not use (the supervisor validated the file, so
    this is a worker that cannot read the payload, or a bug)."""

    TAG: ClassVar[str] = "rules_prepare_failed"
    generation: int
    error: str
    field: str


@dataclass(frozen=True)
class RulesApplied:
    """The worker serves rules generation `generation` now."""

    TAG: ClassVar[str] = "rules_applied"
    generation: int


# -- worker <-> learner, supervisor -> learner (online learning, runtime/learner/) ---------------


@dataclass(frozen=True)
class Feed:
    """Events a worker accepted from a Feedback call, already validated."""

    TAG: ClassVar[str] = "feed"
    id: int
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Fed:
    """The answer to Feed `id`: every event is journaled and in the table, or `error` says
    why none is."""

    TAG: ClassVar[str] = "fed"
    id: int
    accepted: int
    duplicates: int
    error: str


@dataclass(frozen=True)
class ServeVersion:
    """The supervisor's word about `version` of `model`. `exclusive`: it alone serves now (at
    start and when a reload ends, either way), so the learner keeps only its state. Otherwise
    a reload to it began: the learner solves every user against it too, beside the serving
    version, so its table is ready when the workers switch."""

    TAG: ClassVar[str] = "serve_version"
    model: str
    version: int
    exclusive: bool


@dataclass(frozen=True)
class LearnerHeartbeat:
    """Sent by the learner's event loop to the supervisor (runtime/learner/heartbeat.py): the
    loop still runs. `events`: events it holds (for the log when it is killed)."""

    TAG: ClassVar[str] = "learner_heartbeat"
    pid: int
    events: int


ToLearner = Feed | ServeVersion
FromLearner = Fed
LearnerToSupervisor = LearnerHeartbeat

ToSupervisor = (Ready | BootFailed | Heartbeat | ReloadRequest | Prepared | PrepareFailed | Committed | CommitFailed
                | ReloadExperimentsRequest | ExperimentsApplied | ExperimentsPrepared | ExperimentsPrepareFailed
                | ReloadRulesRequest | RulesPrepared | RulesPrepareFailed | RulesApplied)

# -- supervisor <-> verifier helper ----------------------------------------------------------------


@dataclass(frozen=True)
class Verify:
    """Which version `spec` names, verified; versions in `known_bad` are skipped by `latest`."""

    TAG: ClassVar[str] = "verify"
    ticket: int
    spec: VersionSpec
    known_bad: tuple[int, ...]


@dataclass(frozen=True)
class BadVersion:
    version: int
    reason: str


@dataclass(frozen=True)
class VersionChosen:
    """`version` passed every check; `digests` are what hashing it computed (the supervisor
    hands them to the workers), `bad` the newer versions that failed on the way."""

    TAG: ClassVar[str] = "version_chosen"
    ticket: int
    version: int
    bad: tuple[BadVersion, ...]
    digests: tuple[FileDigest, ...]


@dataclass(frozen=True)
class VersionRefused:
    TAG: ClassVar[str] = "version_refused"
    ticket: int
    kind: ErrorKind
    message: str
    field: str | None
    bad: tuple[BadVersion, ...]


ToVerifier = Verify
FromVerifier = VersionChosen | VersionRefused

# -- supervisor <-> store follower -----------------------------------------------------------------


@dataclass(frozen=True)
class Sync:
    """Bring `spec` (`latest`: the store's target) into the cache; answered by Available or
    Unavailable with the same `id`."""

    TAG: ClassVar[str] = "sync"
    id: int
    spec: VersionSpec


@dataclass(frozen=True)
class Serving:
    """The version the pool serves: the follower's cache pruning keeps it."""

    TAG: ClassVar[str] = "serving"
    version: int


@dataclass(frozen=True)
class Available:
    """`version` is in the cache. `id`: the Sync it answers; INITIAL for the first look after
    the follower started; WATCH for a new target the follower found by itself."""

    TAG: ClassVar[str] = "available"
    id: int
    version: int


@dataclass(frozen=True)
class NotAvailable:
    TAG: ClassVar[str] = "not_available"
    id: int
    kind: ErrorKind
    message: str


# Ids of Available/NotAvailable that answer no Sync.
INITIAL = -1
WATCH = 0

ToFollower = Sync | Serving
FromFollower = Available | NotAvailable | StoreStatus

Message = (ToWorker | ToSupervisor | ToVerifier | FromVerifier | ToFollower | FromFollower | ToLearner
           | FromLearner | LearnerToSupervisor)


class FrameTooLarge(ValueError):
    """A message that cannot cross as one frame (a sender's bug, not the peer's)."""


def _kinds(union: Any) -> tuple[type[Any], ...]:
    args = typing.get_args(union)
    return args if args else (union,)


_TO_WORKER = _kinds(ToWorker)
_TO_SUPERVISOR = _kinds(ToSupervisor)
_TO_VERIFIER = _kinds(ToVerifier)
_FROM_VERIFIER = _kinds(FromVerifier)
_TO_FOLLOWER = _kinds(ToFollower)
_FROM_FOLLOWER = _kinds(FromFollower)
_TO_LEARNER = _kinds(ToLearner)
_FROM_LEARNER = _kinds(FromLearner)
_LEARNER_TO_SUPERVISOR = _kinds(LearnerToSupervisor)
ALL: tuple[type[Any], ...] = tuple(dict.fromkeys((*_TO_WORKER, *_TO_SUPERVISOR, *_TO_VERIFIER, *_FROM_VERIFIER,
                                                  *_TO_FOLLOWER, *_FROM_FOLLOWER, *_TO_LEARNER,
                                                  *_FROM_LEARNER, *_LEARNER_TO_SUPERVISOR)))
_BY_TAG: dict[str, type[Any]] = {cls.TAG: cls for cls in ALL}
assert len(_BY_TAG) == len(ALL), "duplicate tag"


def encode(message: Message, *, limit: int = MAX_FRAME) -> bytes:
    """`limit`: the largest frame the transport takes (the learner's stream socket takes
    larger ones than a SOCK_SEQPACKET datagram)."""
    data: bytes = msgpack.packb([message.TAG, *(_plain(getattr(message, f.name)) for f in dataclasses.fields(message))])
    if len(data) > limit:
        raise FrameTooLarge(f"{message.TAG} message of {len(data)} bytes is larger than {limit}")
    return data


def decode_to_worker(data: bytes) -> ToWorker:
    return typing.cast(ToWorker, _decode(data, _TO_WORKER))


def decode_to_supervisor(data: bytes) -> ToSupervisor:
    return typing.cast(ToSupervisor, _decode(data, _TO_SUPERVISOR))


def decode_to_learner(data: bytes) -> ToLearner:
    return typing.cast(ToLearner, _decode(data, _TO_LEARNER))


def decode_from_learner(data: bytes) -> FromLearner:
    return typing.cast(FromLearner, _decode(data, _FROM_LEARNER))


def decode_learner_to_supervisor(data: bytes) -> LearnerToSupervisor:
    return typing.cast(LearnerToSupervisor, _decode(data, _LEARNER_TO_SUPERVISOR))


def decode_to_verifier(data: bytes) -> ToVerifier:
    return typing.cast(ToVerifier, _decode(data, _TO_VERIFIER))


def decode_from_verifier(data: bytes) -> FromVerifier:
    return typing.cast(FromVerifier, _decode(data, _FROM_VERIFIER))


def decode_to_follower(data: bytes) -> ToFollower:
    return typing.cast(ToFollower, _decode(data, _TO_FOLLOWER))


def decode_from_follower(data: bytes) -> FromFollower:
    return typing.cast(FromFollower, _decode(data, _FROM_FOLLOWER))


def _plain(value: Any) -> Any:
    if type(value) is Event:  # the bulk of a Feed: thousands a second, spelt out
        return [value.event_id, value.user_id, value.item_id, value.type, value.weight, value.time]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return [_plain(getattr(value, f.name)) for f in dataclasses.fields(value)]
    return value


def _decode(data: bytes, allowed: tuple[type[Any], ...]) -> Any:
    try:
        raw = msgpack.unpackb(data)
    except Exception as e:  # msgpack raises several unrelated types for bad bytes
        raise ValueError(f"control message is not msgpack: {e}") from None
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], str):
        raise ValueError("control message is not [tag, ...]")
    cls = _BY_TAG.get(raw[0])
    if cls is None or cls not in allowed:
        raise ValueError(f"unexpected control message {raw[0][:40]!r}")
    return _build(cls, raw[1:], cls.TAG)


def _build(cls: type[Any], values: Any, where: str) -> Any:
    fields = dataclasses.fields(cls)
    if not isinstance(values, list) or len(values) != len(fields):
        raise ValueError(f"{where}: expected {len(fields)} fields")
    hints = _hints(cls)
    return cls(*(_convert(hints[f.name], v, f"{where}.{f.name}") for f, v in zip(fields, values, strict=True)))


def _version_spec(value: Any, where: str) -> VersionSpec:
    if value == LATEST.value:
        return LATEST
    if type(value) is int and 0 < value < 10 ** MAX_DIGITS:
        return value
    raise ValueError(f"{where}: expected 'latest' or a positive version number, got {value!r:.40}")


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and Latest in typing.get_args(hint):
        return _version_spec(value, where)
    if origin is tuple:  # tuple[X, ...]
        (item, _) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        if item is Event:
            return tuple(_event(v, where) for v in value)
        return tuple(_convert(item, v, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner, value, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise ValueError(f"{where}: unknown {hint.__name__} {value!r}") from None
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool, float) and type(value) is hint:
        return value
    raise ValueError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {type(value).__name__}")


def _event(value: Any, where: str) -> Event:
    """`_convert(Event, ...)` for the one dataclass that crosses by the thousand (a Feed's
    events), without its per-field generic dispatch: the same checks, the same errors."""
    if type(value) is list and len(value) == 6:
        event_id, user_id, item_id, kind, weight, when = value
        ids = type(event_id) is str and type(user_id) is str and type(item_id) is str and type(kind) is str
        if ids and (type(weight) is float or weight is None) and type(when) is float:
            return Event(event_id, user_id, item_id, kind, weight, when)
    result: Event = _build(Event, value, where)  # the general path finds and names what is wrong
    return result


_hint_cache: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _hint_cache:
        _hint_cache[cls] = typing.get_type_hints(cls)
    return _hint_cache[cls]
