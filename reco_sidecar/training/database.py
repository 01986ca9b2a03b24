"""Interactions straight from uro's database (PostgreSQL or CockroachDB) with psycopg 3.

The database does the heavy lifting: it weights each row by its interaction type and age
and sums duplicates per (user, item), so only one row per pair crosses the wire. Rows
come through a server-side cursor in batches, so memory holds one batch of them at a time.
Ids are cast to text in SQL: a UUID column arrives as its canonical string form.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from reco_sidecar.common import logs
from reco_sidecar.common.errors import InvalidArgument, RecoError, Unavailable
from reco_sidecar.training import progress
from reco_sidecar.training.interactions import Builder, Interactions
from reco_sidecar.training.weights import DEFAULT_TYPE_WEIGHTS, trained

log = logs.get(__name__)

CURSOR_NAME = "reco_sidecar_interactions"


@dataclass(frozen=True)
class TableSpec:
    table: str = "user_interactions"
    user_column: str = "user_id"
    item_column: str = "post_id"
    type_column: str = "interaction_type"
    time_column: str = "created_at"

    def as_dict(self) -> dict[str, str]:
        return {"table": self.table, "user_column": self.user_column, "item_column": self.item_column,
                "type_column": self.type_column, "time_column": self.time_column}


@dataclass(frozen=True)
class ReadSpec:
    table: TableSpec = field(default_factory=TableSpec)
    type_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TYPE_WEIGHTS))
    # None: no decay. Otherwise an interaction half_life_days old counts half.
    half_life_days: float | None = None
    # Ages are measured from here (default: when the read starts), so a re-run is reproducible.
    as_of: dt.datetime | None = None
    batch_size: int = 50_000


def _table(name: str) -> sql.Identifier:
    # "schema.table" names a table in a schema; each part is quoted on its own.
    parts = name.split(".")
    if not all(parts):
        raise InvalidArgument(f"{name!r} is not a table name", field="table")
    return sql.Identifier(*parts)


def build_query(spec: ReadSpec, as_of: dt.datetime) -> sql.Composed:
    """One row per (user, item): the sum of type weight x decay over its interactions."""
    t = spec.table
    columns = (t.user_column, t.item_column, t.type_column, t.time_column)
    user, item, kind, when = (sql.Identifier(c) for c in columns)
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(name), sql.Literal(float(w)))
        for name, w in sorted(trained(spec.type_weights).items())
    )
    weight = sql.SQL("(CASE {}::text {} END)::float8").format(kind, cases)
    if spec.half_life_days is not None:
        age = sql.SQL("greatest(extract(epoch FROM ({} - {}))::float8, 0.0::float8)").format(
            sql.Literal(as_of), when)
        # An undated row counts as fresh rather than being dropped.
        decay = sql.SQL("coalesce(power(0.5::float8, {} / {}::float8), 1.0::float8)").format(
            age, sql.Literal(spec.half_life_days * 86_400.0))
        weight = sql.SQL("{} * {}").format(weight, decay)
    types = sql.SQL(", ").join(sql.Literal(name) for name in sorted(trained(spec.type_weights)))
    return sql.SQL(
        "SELECT {user}::text, {item}::text, sum({weight})::float8 FROM {table}"
        " WHERE {kind}::text IN ({types}) AND {user} IS NOT NULL AND {item} IS NOT NULL"
        # No ORDER BY: sorting millions of pairs costs the server more than sorting the ids here.
        " GROUP BY {user}, {item}"
    ).format(user=user, item=item, weight=weight, table=_table(t.table), kind=kind, types=types)


def describe_dsn(dsn: str) -> dict[str, Any]:
    """Where the data came from, for the manifest: never the password."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as e:
        raise InvalidArgument(f"not a valid connection string: {e}", field="dsn") from None
    return {k: v for k, v in params.items() if k in ("host", "port", "dbname", "user")}


def read_interactions(dsn: str, spec: ReadSpec, *,
                      show_progress: bool | None = None) -> tuple[Interactions, dt.datetime]:
    """Reads and aggregates the interaction table; returns the data and the as-of time used."""
    as_of = spec.as_of or dt.datetime.now(dt.UTC)
    query = build_query(spec, as_of)
    builder = Builder()
    pairs = 0
    try:
        with psycopg.connect(dsn, autocommit=False) as conn:
            conn.read_only = True
            with conn.cursor(name=CURSOR_NAME) as cur, progress.bar(
                show_progress, desc="reading interactions", unit=" pairs"
            ) as bar:
                cur.itersize = spec.batch_size
                cur.execute(query)
                while rows := cur.fetchmany(spec.batch_size):
                    users, items, weights = zip(*rows, strict=True)
                    builder.add_arrays(users, items, np.asarray(weights, dtype=np.float64))
                    pairs += len(rows)
                    bar.update(len(rows))
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn,
            psycopg.errors.InvalidSchemaName) as e:
        raise InvalidArgument(f"interaction table or column not found: {e}".strip(), field="table") from None
    except psycopg.OperationalError as e:
        raise Unavailable(f"cannot read from the database: {e}".strip(), field="dsn") from None
    except psycopg.Error as e:
        raise RecoError(f"reading interactions failed: {e}".strip()) from None
    # Rows in id order, whatever order the server sent: a seeded training run is then reproducible.
    data = builder.build().sorted_by_id()
    log.info("interactions_read", pairs=pairs, users=len(data.user_ids), items=len(data.item_ids),
             as_of=as_of.isoformat(), half_life_days=spec.half_life_days)
    return data, as_of
