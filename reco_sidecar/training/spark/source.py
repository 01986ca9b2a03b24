"""Where the interactions come from, as one DataFrame of (user_id, item_id, weight) with one row
per pair: Parquet or CSV files on local disk or S3, or uro's database through Spark's JDBC reader.

The database rows are weighted exactly as `training/database.py` weights them for the one-machine
trainer (type weight x 0.5^(age / half-life), undated rows fresh, other types ignored, duplicates
summed), but the arithmetic runs on the cluster: each JDBC partition reads a range of one column.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.training.database import ReadSpec
from reco_sidecar.training.weights import trained

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

FORMATS = ("csv", "parquet")


def spark_path(path: str) -> str:
    """Hadoop's S3 connector is `s3a://`; the model store's settings name buckets `s3://`."""
    return "s3a://" + path[len("s3://"):] if path.startswith("s3://") else path


def file_format(path: str, given: str | None) -> str:
    if given:
        return given
    name = path.rstrip("/").lower()
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return "csv"
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    raise InvalidArgument(f"cannot tell the format of {path!r} from its name: give --input-format csv|parquet",
                          field="input_format")


@dataclass(frozen=True)
class Read:
    pairs: DataFrame  # user_id, item_id, weight: one row per pair
    # Unix time the data ends (the version's `as_of`): the given cut-off, else the newest
    # timestamp, else None when the files carry no time.
    as_of: float | None


def read_files(spark: SparkSession, path: str, fmt: str, *, until: float | None = None) -> Read:
    """Columns user_id, item_id and optionally weight (default 1) and timestamp (unix seconds), as
    `train --interactions` reads a CSV: duplicate pairs summed, rows after `until` left out."""
    from pyspark.sql import functions as F

    if fmt not in FORMATS:
        raise InvalidArgument(f"input format must be one of {', '.join(FORMATS)}, got {fmt!r}",
                              field="input_format")
    reader = spark.read
    if fmt == "csv":
        # Ids stay strings (no inference): "007" and "7" are two users.
        df = reader.option("header", "true").option("inferSchema", "false").csv(spark_path(path))
    else:
        df = reader.parquet(spark_path(path))
    missing = [c for c in ("user_id", "item_id") if c not in df.columns]
    if missing:
        raise InvalidArgument(f"{path}: no column {', '.join(missing)} (columns: {df.columns})",
                              field="interactions")
    weight = F.col("weight").cast("double") if "weight" in df.columns else F.lit(1.0)
    at = F.col("timestamp").cast("double") if "timestamp" in df.columns else F.lit(None).cast("double")
    rows = df.select(F.col("user_id").cast("string").alias("user_id"),
                     F.col("item_id").cast("string").alias("item_id"),
                     F.coalesce(weight, F.lit(1.0)).alias("weight"), at.alias("at"))
    rows = rows.where(F.col("user_id").isNotNull() & F.col("item_id").isNotNull())
    if "timestamp" not in df.columns:
        return Read(_pairs(rows.drop("at")), until)
    if until is not None:
        rows = rows.where(F.col("at").isNull() | (F.col("at") <= until))
    if until is None:
        newest = rows.agg(F.max("at")).collect()[0][0]
        until = None if newest is None else float(newest)
    return Read(_pairs(rows.drop("at")), until)


def _pairs(rows: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return rows.groupBy("user_id", "item_id").agg(F.sum("weight").alias("weight"))


@dataclass(frozen=True)
class JdbcSpec:
    url: str
    user: str | None
    password: str | None
    # Spark reads one range of this column per partition: numeric, date or timestamp.
    partition_column: str
    partitions: int


def jdbc_from_dsn(dsn: str, partition_column: str, partitions: int) -> JdbcSpec:
    """A JDBC URL and credentials from a libpq DSN (password from the DSN or PGPASSWORD, never logged)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception as e:  # psycopg raises ProgrammingError; any parse failure names the flag
        raise InvalidArgument(f"not a valid connection string: {e}", field="dsn") from None
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    dbname = str(params.get("dbname") or os.environ.get("PGDATABASE") or "")
    user = params.get("user") or os.environ.get("PGUSER")
    password = params.get("password") or os.environ.get("PGPASSWORD")
    if partitions < 1:
        raise InvalidArgument(f"must be at least 1, got {partitions}", field="jdbc_partitions")
    return JdbcSpec(f"jdbc:postgresql://{host}:{port}/{dbname}", None if user is None else str(user),
                    None if password is None else str(password), partition_column, partitions)


def _quoted(name: str) -> str:
    parts = name.split(".")
    if not all(parts):
        raise InvalidArgument(f"{name!r} is not a table or column name", field="table")
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _row_query(spec: ReadSpec, partition_column: str) -> str:
    t = spec.table
    user, item, kind, when = (_quoted(c) for c in (t.user_column, t.item_column, t.type_column, t.time_column))
    types = ", ".join("'" + name.replace("'", "''") + "'" for name in sorted(trained(spec.type_weights)))
    # Only the row filter and the casts run in the database; weighting and summing run in Spark,
    # so each partition's query is a plain range scan.
    return (f"(SELECT {user}::text AS user_id, {item}::text AS item_id, {kind}::text AS kind,"
            f" {when} AS at, {_quoted(partition_column)} AS part"
            f" FROM {_quoted(t.table)} WHERE {kind}::text IN ({types})"
            f" AND {user} IS NOT NULL AND {item} IS NOT NULL) AS interactions")


def _weight(spec: ReadSpec, as_of: dt.datetime) -> Column:
    from pyspark.sql import functions as F

    kind = F.col("kind")
    weight: Column | None = None
    for name, w in sorted(trained(spec.type_weights).items()):
        weight = F.when(kind == name, F.lit(float(w))) if weight is None else weight.when(kind == name,
                                                                                           F.lit(float(w)))
    if weight is None:
        raise InvalidArgument("no interaction types to read", field="weights")
    if spec.half_life_days is None:
        return weight
    age = F.greatest(F.lit(as_of.timestamp()) - F.col("at").cast("double"), F.lit(0.0))
    # An undated row counts as fresh rather than being dropped, as in the database reader.
    decay = F.coalesce(F.pow(F.lit(0.5), age / F.lit(spec.half_life_days * 86_400.0)), F.lit(1.0))
    return weight * decay


def read_jdbc(spark: SparkSession, jdbc: JdbcSpec, spec: ReadSpec) -> Read:
    """The pairs from uro's table; `as_of` is the time their ages were measured from."""
    as_of = spec.as_of or dt.datetime.now(dt.UTC)
    props = {"driver": "org.postgresql.Driver", "fetchsize": str(spec.batch_size)}
    if jdbc.user is not None:
        props["user"] = jdbc.user
    if jdbc.password is not None:
        props["password"] = jdbc.password
    table = _row_query(spec, jdbc.partition_column)
    bounds = spark.read.jdbc(jdbc.url, f"(SELECT min(part) AS lo, max(part) AS hi FROM {table}) AS b",
                             properties=props).collect()[0]
    if bounds["lo"] is None:
        raise InvalidArgument("no interactions to train on", field="interactions")
    lo, hi = bounds["lo"], bounds["hi"]
    reader = spark.read.format("jdbc").option("url", jdbc.url).option("dbtable", table)
    for key, value in props.items():
        reader = reader.option(key, value)
    if jdbc.partitions > 1 and lo != hi:
        # The generic reader takes bounds as text, so timestamp and date columns partition too
        # (DataFrameReader.jdbc's keyword form casts them to int).
        reader = (reader.option("partitionColumn", "part").option("lowerBound", str(lo))
                  .option("upperBound", str(hi)).option("numPartitions", str(jdbc.partitions)))
    rows = reader.load()
    weighted = rows.select("user_id", "item_id", _weight(spec, as_of).alias("weight"))
    return Read(_pairs(weighted), as_of.timestamp())
