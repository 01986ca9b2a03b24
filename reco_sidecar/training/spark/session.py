"""The Spark session a training run uses: one per run, stopped when it ends.

Settings that must be fixed before the JVM starts (driver memory, extra packages) are given here;
anything else can be passed through `--spark-conf KEY=VALUE`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reco_sidecar.common import logs
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.training.spark import java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logs.get(__name__)

# The PostgreSQL JDBC driver Spark's JDBC reader loads (from Maven Central, cached by Ivy).
POSTGRES_JDBC = "org.postgresql:postgresql:42.7.14"
# Hadoop's S3 connector, at the version of the Hadoop client pyspark 4.3 ships (for s3a:// reads).
HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.5.0"


@dataclass(frozen=True)
class SparkSettings:
    # None: the master spark-submit was given (a SparkApplication, cluster mode), else local[*].
    master: str | None = None
    driver_memory: str | None = None
    # Shuffle partitions: Spark's default (200) is sized for clusters; None keeps it.
    shuffle_partitions: int | None = None
    # Extra KEY=VALUE settings (`--spark-conf`), applied last.
    conf: Mapping[str, str] = field(default_factory=dict)
    # Maven coordinates to load (JDBC driver, hadoop-aws for s3a://).
    packages: tuple[str, ...] = ()
    # S3-compatible endpoint for s3a:// reads (the model store's --s3-endpoint-url).
    s3_endpoint_url: str | None = None


def parse_conf(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"{pair!r} is not KEY=VALUE", field="spark_conf")
        out[key.strip()] = value
    return out


def _is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def _submitted() -> bool:
    """Started by spark-submit (which passes its own master and settings through a gateway it
    already launched): setting a master here would override the cluster's."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def effective_master(given: str | None) -> str | None:
    if given is not None:
        return given
    return None if _submitted() else "local[*]"


def _options(s: SparkSettings, master: str | None) -> dict[str, str]:
    opts: dict[str, str] = {
        # A training run has no use for the web UI, and on a shared host its port is one more
        # thing to collide.
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        # Progress bars would interleave with the structured log lines on stderr.
        "spark.ui.showConsoleProgress": "false",
    }
    if master is not None and _is_local(master):
        # Local mode talks to itself only: keep the driver on loopback.
        opts["spark.driver.host"] = "127.0.0.1"
        opts["spark.driver.bindAddress"] = "127.0.0.1"
        opts["spark.sql.shuffle.partitions"] = str(s.shuffle_partitions or max(4, 2 * (os.cpu_count() or 1)))
    elif s.shuffle_partitions:
        opts["spark.sql.shuffle.partitions"] = str(s.shuffle_partitions)
    if s.driver_memory:
        opts["spark.driver.memory"] = s.driver_memory
    if s.packages:
        opts["spark.jars.packages"] = ",".join(s.packages)
    if s.s3_endpoint_url:
        opts["spark.hadoop.fs.s3a.endpoint"] = s.s3_endpoint_url
        # S3-compatible stores rarely have per-bucket DNS names (as the boto3 client assumes too).
        opts["spark.hadoop.fs.s3a.path.style.access"] = "true"
        opts["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(s.s3_endpoint_url.startswith("https")).lower()
    opts.update(s.conf)
    return opts


@contextlib.contextmanager
def session(settings: SparkSettings) -> Iterator[SparkSession]:
    """A SparkSession for one run; stopped (and a local JVM with it) however the run ends."""
    java.check()
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError:
        raise InvalidArgument("--engine spark needs pyspark: pip install 'reco-sidecar[spark]'",
                              field="engine") from None
    master = effective_master(settings.master)
    builder = SparkSession.builder.appName("reco-sidecar-train")
    if master is not None:
        builder = builder.master(master)
    for key, value in _options(settings, master).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark_started", master=spark.sparkContext.master, version=spark.version,
             parallelism=spark.sparkContext.defaultParallelism)
    try:
        yield spark
    finally:
        spark.stop()
