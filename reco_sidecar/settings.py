"""The one frozen settings object of `serve`, built from flags, with RECO_* environment
variables as defaults (a flag wins over its variable)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import pathlib
import re
from dataclasses import dataclass

from reco_sidecar.common import names as names_rule
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.common.tokens import read_tokens
from reco_sidecar.common.versions import VersionSpec, parse_version_spec

# The batcher's wait policies (serving/batch_wait.py), the default first.
BATCH_WAIT_POLICIES = ("aimd", "in-flight", "timer", "budget")


@dataclass(frozen=True)
class ServeSettings:
    model_root: pathlib.Path
    # Every model served, resolved by from_args (never empty there): --model repeated, or all
    # under the root.
    model: tuple[str, ...] = ()
    # The model a request with an empty `model` gets.
    default_model: str = ""
    # A/B experiments file (TOML or JSON), validated before any worker sees it.
    experiments: pathlib.Path | None = None
    # Ranking rules file (TOML or JSON): diversity, freshness, editorial (docs/ranking.md).
    rules: pathlib.Path | None = None
    version: str = "latest"
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 2
    grace: float = 10.0
    idle_shutdown_after: float = 0.0
    parent_pid: int | None = None
    exit_on_stdin_eof: bool = False
    worker_timeout: float = 30.0
    reload_timeout: float = 600.0
    watch: float = 0.0
    max_n: int = 1000
    max_offset: int = 10_000
    max_ids: int = 10_000
    max_batch_users: int = 1_000_000
    batch_chunk: int = 512
    # BatchRecommend requests held per worker by open streams, read or not, counted at
    # handlers.HELD_PER_REQUEST_BYTE times their size on the wire.
    batch_memory_mb: int = 256
    max_concurrent_rpcs: int = 64
    # Health Watch and reflection streams each, per worker: outside max_concurrent_rpcs so idle
    # streams cannot starve callers, bounded so they cannot exhaust the worker either.
    max_side_streams: int = 16
    max_message_bytes: int = 16 * 1024 * 1024
    batch_max_delay_ms: float = 3.0
    batch_max_size: int = 64
    # When the batcher waits for company (serving/batch_wait.py); the others are kept to be
    # measured against it (docs/performance.md).
    batch_wait_policy: str = "aimd"
    jsonld_item_iri: str = "https://uro.example/items/{id}"
    metrics_port: int | None = None
    tls_cert: pathlib.Path | None = None
    tls_key: pathlib.Path | None = None
    tls_client_ca: pathlib.Path | None = None
    auth_tokens_file: pathlib.Path | None = None
    admin_tokens_file: pathlib.Path | None = None
    log_level: str = "info"
    log_format: str = "json"
    # The model store followed into model_root (the local cache); None: model_root alone.
    model_store: str | None = None
    s3_endpoint_url: str | None = None
    store_keep: int = 3
    access_log: str = "sampled"
    slow_call_ms: float = 100.0
    # Online learning (docs/online.md): the Feedback RPC, its journal and the learner process,
    # on when this directory (journal and tables, one sidecar's alone) is given.
    online_dir: pathlib.Path | None = None
    online_max_users: int = 100_000
    online_fsync: str = "always"
    online_retention_events: int = 1_000_000
    # Several replicas: the Redis Stream every replica adds its events to and reads all from.
    online_stream: str | None = None
    online_stream_key: str = ""
    online_stream_maxlen: int = 1_000_000

    @property
    def online(self) -> bool:
        return self.online_dir is not None

    @property
    def online_path(self) -> pathlib.Path:
        assert self.online_dir is not None, "online learning is off"
        return self.online_dir
    # OpenTelemetry traces over OTLP/gRPC (serving/tracing.py): off while no endpoint is set
    # here or in OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT. None ratio: OTEL_TRACES_SAMPLER decides.
    otlp_endpoint: str | None = None
    trace_sample_ratio: float | None = None

    @property
    def version_spec(self) -> VersionSpec:
        return parse_version_spec(self.version)

    @property
    def shared_address(self) -> str:
        return f"{self.host}:{self.port}"


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, got {text}")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")


def _model_names(text: str) -> tuple[str, ...]:
    """One name, or several separated by commas (how RECO_MODEL lists several)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"must name a model, got {text!r}")
    for name in names:
        if not names_rule.is_model_name(name):
            raise argparse.ArgumentTypeError(f"{name!r} is not a model name ({names_rule.RULE})")
    return names


class _Models(argparse.Action):
    """`--model a --model b` (or `--model a,b`): the first flag replaces the variable's value."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        seen = getattr(namespace, "_models_from_flags", False)
        current = getattr(namespace, self.dest) if seen else ()
        assert isinstance(values, tuple)
        setattr(namespace, self.dest, tuple(dict.fromkeys((*current, *values))))
        namespace._models_from_flags = True


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    d = ServeSettings(model_root=pathlib.Path("."))
    g = p.add_argument_group("model")
    g.add_argument("--model-root", type=pathlib.Path, required=True, help="directory holding <model>/<version>/")
    g.add_argument("--model", type=_model_names, action=_Models, default=None,
                   help="a model to serve; repeat it (or separate names by commas) for several "
                   "(default: every model under the root)")
    g.add_argument("--default-model", default=None,
                   help="the model a request with an empty `model` gets (default: the first --model, "
                   "or the only model)")
    g.add_argument("--experiments", type=pathlib.Path, default=None,
                   help="A/B experiments file (TOML or JSON); reloaded by ReloadExperiments and by --watch")
    g.add_argument("--rules", type=pathlib.Path, default=None,
                   help="ranking rules file (TOML or JSON); reloaded by ReloadRules and by --watch")
    g.add_argument("--version", default=d.version, help="version to serve first: a number or 'latest'")
    g.add_argument("--watch", type=_non_negative_float, default=d.watch,
                   help="poll every SECONDS for a newer complete version and reload it (0: off); "
                   "with --model-store, look at the store's CURRENT pointer")
    g.add_argument("--model-store", default=None,
                   help="s3://BUCKET[/PREFIX]: follow this store; --model-root becomes its local cache")
    g.add_argument("--s3-endpoint-url", default=None,
                   help="endpoint of an S3-compatible store (unset: AWS S3); credentials come from the AWS chain")
    g.add_argument("--store-keep", type=_positive_int, default=d.store_keep,
                   help="versions kept in the local cache, the most recently used (the serving one is always kept)")
    g = p.add_argument_group("online learning (docs/online.md)")
    g.add_argument("--online-dir", type=pathlib.Path, default=None,
                   help="turns online learning on: accepted Feedback events are journaled here and users are "
                        "answered from their updated vectors (one sidecar per directory)")
    g.add_argument("--online-max-users", type=_positive_int, default=d.online_max_users,
                   help="users with an online vector; beyond, the least recently updated of a bucket is evicted")
    g.add_argument("--online-fsync", choices=("always", "never"), default=d.online_fsync,
                   help="always: fdatasync the journal before acknowledging; never: the OS writes it back")
    g.add_argument("--online-retention-events", type=_positive_int, default=d.online_retention_events,
                   help="events the journal keeps (and deduplicates) at least; size it above one retrain "
                        "interval of events")
    g.add_argument("--online-stream", default=None,
                   help="redis://host:port/db: replicas share their Feedback events through this Redis Stream")
    g.add_argument("--online-stream-key", default=d.online_stream_key,
                   help="the stream's key (default: reco:feedback:<default model>)")
    g.add_argument("--online-stream-maxlen", type=_positive_int, default=d.online_stream_maxlen,
                   help="entries the stream keeps (about; XADD MAXLEN ~); size it above one retrain interval")
    g = p.add_argument_group("network")
    g.add_argument("--host", default=d.host, help="address to bind (shared and per-worker ports)")
    g.add_argument("--port", type=_port, default=d.port, help="shared port; 0 picks a free one")
    g.add_argument("--max-message-bytes", type=_positive_int, default=d.max_message_bytes)
    g.add_argument("--max-concurrent-rpcs", type=_positive_int, default=d.max_concurrent_rpcs,
                   help="per worker; more at once are answered RESOURCE_EXHAUSTED")
    g = p.add_argument_group("process lifecycle")
    g.add_argument("--max-side-streams", type=_positive_int, default=d.max_side_streams,
                   help="open health Watch streams, and reflection streams, each allowed per worker "
                        "(one Watch per client pool per worker)")
    g.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1, help="worker processes")
    g.add_argument("--grace", type=_non_negative_float, default=d.grace,
                   help="seconds in-flight RPCs get to finish on SIGTERM")
    g.add_argument("--idle-shutdown-after", type=_non_negative_float, default=d.idle_shutdown_after,
                   help="exit 0 after SECONDS without RPCs (0: never)")
    g.add_argument("--reload-timeout", type=_positive_float, default=d.reload_timeout,
                   help="a reload (verifying and loading the version on every worker) that takes longer than "
                   "SECONDS fails UNAVAILABLE; the old version keeps serving")
    g.add_argument("--worker-timeout", type=_positive_float, default=d.worker_timeout,
                   help="kill and replace a worker whose heartbeat is this many SECONDS late")
    g.add_argument("--parent-pid", type=_positive_int, default=None, help="exit when this process is gone")
    g.add_argument("--exit-on-stdin-eof", type=_bool, nargs="?", const=True, default=d.exit_on_stdin_eof,
                   help="exit when standard input closes (a BEAM Port closing)")
    g = p.add_argument_group("limits and batching")
    g.add_argument("--max-n", type=_positive_int, default=d.max_n, help="largest n a request may ask for")
    g.add_argument("--max-offset", type=_positive_int, default=d.max_offset)
    g.add_argument("--max-ids", type=_positive_int, default=d.max_ids,
                   help="longest id list in a filter or recent_item_ids")
    g.add_argument("--max-batch-users", type=_positive_int, default=d.max_batch_users)
    g.add_argument("--batch-chunk", type=_positive_int, default=d.batch_chunk,
                   help="BatchRecommend users scored per matrix product")
    g.add_argument("--batch-memory-mb", type=_positive_int, default=d.batch_memory_mb,
                   help="memory the requests of open BatchRecommend streams may hold per worker (counted at 5x "
                        "their size); a stream past it is answered RESOURCE_EXHAUSTED")
    g.add_argument("--batch-max-delay-ms", type=_non_negative_float, default=d.batch_max_delay_ms,
                   help="longest wait to gather concurrent Recommend calls into one product (0: no wait)")
    g.add_argument("--batch-max-size", type=_positive_int, default=d.batch_max_size,
                   help="most Recommend calls per product (1 disables dynamic batching)")
    g.add_argument("--batch-wait-policy", choices=BATCH_WAIT_POLICIES, default=d.batch_wait_policy,
                   help="when to wait for company: aimd (the default: a wait budget that grows while waits "
                        "gather company and halves when they do not), in-flight, timer or budget "
                        "(compared in docs/performance.md)")
    g.add_argument("--jsonld-item-iri", default=d.jsonld_item_iri, help="IRI template for items, with {id}")
    g = p.add_argument_group("operations and security")
    g.add_argument("--metrics-port", type=_port, default=None, help="Prometheus /metrics on this port")
    g.add_argument("--access-log", choices=("on", "off", "sampled"), default=d.access_log,
                   help="one log line per Recommender call: every call, none, or one in 100 (sampled); "
                        "failed and slow calls are always logged")
    g.add_argument("--slow-call-ms", type=_non_negative_float, default=d.slow_call_ms,
                   help="a call taking at least this long is always logged, as a warning")
    g.add_argument("--otlp-endpoint", default=None,
                   help="send OpenTelemetry traces to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317 "
                        "(default: off, unless OTEL_EXPORTER_OTLP_ENDPOINT is set)")
    g.add_argument("--trace-sample-ratio", type=_ratio, default=None,
                   help="share of calls traced when the caller sent no sampled traceparent (parent-based; "
                        "default: OTEL_TRACES_SAMPLER, else every call)")
    g.add_argument("--tls-cert", type=pathlib.Path, default=None, help="PEM certificate chain")
    g.add_argument("--tls-key", type=pathlib.Path, default=None, help="PEM private key")
    g.add_argument("--tls-client-ca", type=pathlib.Path, default=None,
                   help="PEM CA bundle; clients must present a certificate it signed (mutual TLS)")
    g.add_argument("--auth-tokens-file", type=pathlib.Path, default=None,
                   help="bearer tokens allowed to call (one per line)")
    g.add_argument("--admin-tokens-file", type=pathlib.Path, default=None,
                   help="bearer tokens allowed to call Reload too (one per line)")
    _env_defaults(p)


def _env_defaults(p: argparse.ArgumentParser) -> None:
    """Every option's default comes from RECO_<OPTION> when that variable is set."""
    for action in p._actions:
        if not action.option_strings or action.dest == "help":
            continue
        env = "RECO_" + action.dest.upper()
        action.help = f"{action.help or ''} [env {env}]".strip()
        if env not in os.environ:
            continue
        raw = os.environ[env]
        convert = action.type if callable(action.type) else str
        try:
            action.default = convert(raw)
        except (argparse.ArgumentTypeError, ValueError) as e:
            p.error(f"{env}={raw!r}: {e}")
        action.required = False


def from_args(args: argparse.Namespace, models: tuple[str, ...], default_model: str) -> ServeSettings:
    fields = {f.name for f in dataclasses.fields(ServeSettings)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    values["model"] = models
    values["default_model"] = default_model
    # Absolute from here on: GetModelStatus.path, logs and error messages name the directory
    # a reader can find without knowing the cwd serve was started in.
    values["model_root"] = pathlib.Path(os.path.abspath(values["model_root"]))
    if values.get("online_dir") is not None:
        values["online_dir"] = pathlib.Path(os.path.abspath(values["online_dir"]))
    settings = ServeSettings(**values)
    validate(settings)
    return settings


def validate(s: ServeSettings) -> None:
    if (s.tls_cert is None) != (s.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if s.tls_client_ca is not None and s.tls_cert is None:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
    if "{id}" not in s.jsonld_item_iri:
        raise ValueError("--jsonld-item-iri must contain {id}")
    if s.access_log not in ("on", "off", "sampled"):
        raise ValueError(f"--access-log must be on, off or sampled, got {s.access_log!r}")
    if s.otlp_endpoint is not None and not re.match(r"^https?://[^/]+", s.otlp_endpoint):
        raise ValueError(f"--otlp-endpoint must be http://host:port (plaintext) or https://host:port, "
                         f"got {s.otlp_endpoint!r}")
    if (s.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) \
            and importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is None:
        raise ValueError("tracing (--otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT) needs the OpenTelemetry "
                         "packages: pip install 'reco-sidecar[tracing]'")
    for path in (s.tls_cert, s.tls_key, s.tls_client_ca, s.auth_tokens_file, s.admin_tokens_file):
        if path is not None and not path.is_file():
            raise ValueError(f"{path} is not a readable file")
    for tokens in (s.auth_tokens_file, s.admin_tokens_file):
        if tokens is not None:
            read_tokens(tokens)  # raises ValueError naming the file: fail at start, not in every worker
    try:
        parse_version_spec(s.version)
    except InvalidArgument as e:
        raise ValueError(f"--version must be a number or 'latest': {e.message}") from None
    if s.default_model not in s.model:
        raise ValueError(f"--default-model {s.default_model!r} is not among the models served "
                         f"({', '.join(s.model)})")
    if len(s.model) > 1 and s.version not in ("", "latest"):
        raise ValueError("--version names one version of one model: with several models it can only be 'latest'")
    if s.online_stream is not None and s.online_dir is None:
        raise ValueError("--online-stream needs --online-dir (each replica journals what it reads)")
    if s.online_stream is not None and not s.online_stream.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--online-stream must be a redis:// URL, got {s.online_stream!r}")
    if s.online_stream is not None and importlib.util.find_spec("redis") is None:
        raise ValueError("--online-stream needs the redis client: pip install 'reco-sidecar[replicas]'")
    if s.experiments is not None and not s.experiments.is_file():
        raise ValueError(f"--experiments: {s.experiments} is not a readable file")
    if s.rules is not None and not s.rules.is_file():
        raise ValueError(f"--rules: {s.rules} is not a readable file")
    if s.model_store is not None:
        if len(s.model) > 1:
            raise ValueError("--model-store follows one model: serve one --model with it")
        from reco_sidecar.store import location

        try:
            location.parse(s.model_store)
            location.check_model_name(s.default_model)
        except ValueError as e:
            raise ValueError(f"--model-store: {e}") from None
        if s.version not in ("", "latest"):
            raise ValueError("--version cannot be combined with --model-store: the store's CURRENT pointer "
                             "names the version")
