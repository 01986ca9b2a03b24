"""Training straight from a PostgreSQL interaction table (needs RECO_TEST_DSN; CI starts one)."""

import datetime as dt
import os
import pathlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
import pytest

from reco_sidecar import cli
from reco_sidecar.artifact import loader
from reco_sidecar.artifact import manifest as manifest_mod
from reco_sidecar.artifact.manifest import Manifest
from reco_sidecar.common import logs
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.engine.query import RecQuery, Restriction
from reco_sidecar.training import database, weights
from tests.support.requires import require

pytestmark = pytest.mark.postgres

DSN = os.environ.get("RECO_TEST_DSN", "")
AS_OF = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


Row = tuple[uuid.UUID, uuid.UUID, str, dt.datetime]
# rows, user ids, post ids, each user's group, each post's group
Planted = tuple[list[Row], list[uuid.UUID], list[uuid.UUID], np.ndarray, np.ndarray]


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # cli.main points structlog at the current (captured) stderr, which pytest closes after the test.
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[Any]]:
    require(bool(DSN), "a PostgreSQL server (RECO_TEST_DSN)")
    with psycopg.connect(DSN, autocommit=True) as c:
        yield c


@pytest.fixture
def table(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A fresh interaction table shaped like uro's (UUID keys), dropped afterwards."""
    name = f"interactions_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE TABLE {name} (id bigserial PRIMARY KEY, user_id uuid NOT NULL, post_id uuid NOT NULL,"
                 " interaction_type text NOT NULL, created_at timestamptz NOT NULL)")
    yield name
    conn.execute(f"DROP TABLE IF EXISTS {name}")


def _insert(conn: psycopg.Connection[Any], table: str, rows: Iterable[Sequence[object]]) -> None:
    with conn.cursor() as cur, cur.copy(
        f"COPY {table} (user_id, post_id, interaction_type, created_at) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row(row)


def _planted(seed: int = 5, users: int = 90, posts: int = 120, groups: int = 3, per_user: int = 14) -> Planted:
    """Users of group g mostly like, share and click posts of group g, and view anything."""
    rng = np.random.default_rng(seed)
    user_ids = [uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | u) for u in range(users)]
    post_ids = [uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | p) for p in range(posts)]
    user_group = np.arange(users) % groups
    post_group = np.arange(posts) % groups
    rows: list[Row] = []
    for u in range(users):
        own = np.flatnonzero(post_group == user_group[u])
        for p in rng.choice(own, size=per_user, replace=False):
            kind = str(rng.choice(["like", "share", "click"]))
            rows.append((user_ids[u], post_ids[p], kind, AS_OF - dt.timedelta(days=int(rng.integers(0, 60)))))
        for p in rng.choice(posts, size=3, replace=False):
            rows.append((user_ids[u], post_ids[p], "view", AS_OF - dt.timedelta(days=1)))
    return rows, user_ids, post_ids, user_group, post_group


def test_train_from_dsn_recommends_each_users_planted_taste(conn: psycopg.Connection[Any], table: str,
                                                            tmp_path: pathlib.Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    rows, user_ids, post_ids, user_group, post_group = _planted()
    _insert(conn, table, rows)
    code = cli.main(["train", "--dsn", DSN, "--table", table, "--model-root", str(tmp_path), "--name", "uro",
                     "--factors", "8", "--iterations", "10", "--regularization", "0.5", "--alpha", "10",
                     "--half-life-days", "30", "--as-of", AS_OF.isoformat(), "--batch-size", "100",
                     "--holdout", "0.2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    model = loader.open_model(tmp_path / "uro" / "1")
    # ids come back as canonical UUID strings, every user and post present
    assert sorted(model.users.ids) == sorted(str(u) for u in user_ids)
    assert set(model.items.ids) <= {str(p) for p in post_ids}
    group_of_post = {str(p): g for p, g in zip(post_ids, post_group, strict=True)}
    in_taste: list[bool] = []
    for u, g in zip(user_ids, user_group, strict=True):
        row = model.users.row(str(u))
        ranked = model.recommend([RecQuery(0, 5, Restriction.none(), user_row=row)])[0]
        in_taste.extend(group_of_post[model.items.ids[r]] == g for r in ranked.rows.tolist())
    assert np.mean(in_taste) > 0.9
    man = manifest_mod.read(tmp_path / "uro" / "1")
    assert man.source["kind"] == "database" and man.source["table"] == table
    assert "password" not in json_text(man)
    assert man.training["half_life_days"] == 30
    # the version records the read's as_of and the types it weighted, for the online solve
    assert man.as_of == AS_OF.timestamp()
    assert {k: t.weight for k, t in man.event_types.items()} == weights.DEFAULT_TYPE_WEIGHTS
    assert man.metrics["ndcg_at_10"] > man.metrics["baseline_ndcg_at_10"]


def json_text(man: Manifest) -> str:
    import json

    return json.dumps(man.to_json())


def test_weights_decay_duplicates_and_unknown_types(conn: psycopg.Connection[Any], table: str) -> None:
    u, p, q = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    _insert(conn, table, [
        (u, p, "view", AS_OF), (u, p, "view", AS_OF), (u, p, "share", AS_OF - dt.timedelta(days=10)),
        (u, q, "like", AS_OF - dt.timedelta(days=20)), (u, q, "bookmark", AS_OF),
        (u, q, "click", AS_OF + dt.timedelta(days=3)),  # from the future: no bonus
    ])
    spec = database.ReadSpec(table=database.TableSpec(table=table), half_life_days=10.0, as_of=AS_OF, batch_size=1)
    data, as_of = database.read_interactions(DSN, spec)
    assert as_of == AS_OF
    assert data.user_ids == [str(u)]
    w = dict(zip(data.item_ids, data.matrix.toarray()[0].tolist(), strict=True))
    assert w[str(p)] == pytest.approx(0.1 + 0.1 + 1.0 * 0.5, rel=1e-6)
    assert w[str(q)] == pytest.approx(0.7 * 0.25 + 0.3, rel=1e-6)

    custom = database.ReadSpec(table=database.TableSpec(table=table), type_weights={"bookmark": 2.0})
    data, _ = database.read_interactions(DSN, custom)
    assert data.item_ids == [str(q)] and data.matrix.toarray().tolist() == [[2.0]]


def test_rows_of_a_shown_type_are_never_read(conn: psycopg.Connection[Any], table: str) -> None:
    """A weight-0 type is impressions (docs/training.md): it gives no pair and no value."""
    u, p, q = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    _insert(conn, table, [(u, p, "view", AS_OF - dt.timedelta(days=1)), (u, p, "shown", AS_OF),
                          (u, q, "shown", AS_OF), (u, q, "shown", AS_OF)])
    spec = database.ReadSpec(table=database.TableSpec(table=table), type_weights=weights.parse("view=0.1,shown=0"))
    data, _ = database.read_interactions(DSN, spec)
    assert data.user_ids == [str(u)]
    assert data.item_ids == [str(p)] and data.matrix.toarray().tolist() == [[pytest.approx(0.1)]]


def test_configurable_schema_table_and_columns(conn: psycopg.Connection[Any]) -> None:
    schema, name = f"s_{uuid.uuid4().hex[:8]}", "events"
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        conn.execute(f"CREATE TABLE {schema}.{name} (who uuid, what uuid, kind text, at timestamptz)")
        u, p = uuid.uuid4(), uuid.uuid4()
        conn.execute(f"INSERT INTO {schema}.{name} VALUES (%s, %s, 'like', now())", (u, p))
        spec = database.ReadSpec(table=database.TableSpec(f"{schema}.{name}", "who", "what", "kind", "at"))
        data, _ = database.read_interactions(DSN, spec)
        assert (data.user_ids, data.item_ids) == ([str(u)], [str(p)])
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_missing_table_is_a_clear_error(conn: psycopg.Connection[Any]) -> None:
    spec = database.ReadSpec(table=database.TableSpec(table="no_such_table_here"))
    with pytest.raises(InvalidArgument, match="not found"):
        database.read_interactions(DSN, spec)


def test_rows_come_out_in_id_order_whatever_the_insertion_order(conn: psycopg.Connection[Any], table: str) -> None:
    ids = [uuid.uuid4() for _ in range(30)]
    _insert(conn, table, [(u, p, "like", AS_OF) for u in reversed(ids) for p in ids[:5]])
    spec = database.ReadSpec(table=database.TableSpec(table=table), batch_size=7)
    data, _ = database.read_interactions(DSN, spec)
    assert data.user_ids == sorted(str(u) for u in ids)
    assert data.item_ids == sorted(str(p) for p in ids[:5])
    assert data.matrix.nnz == 150 and data.matrix.sum() == pytest.approx(150 * 0.7)


def test_spark_reads_the_pairs_the_database_reader_reads(conn: psycopg.Connection[Any], table: str,
                                                         tmp_path: pathlib.Path) -> None:
    """`train --engine spark --dsn`: Spark's JDBC reader, partitioned on the time column, weights
    and sums each (user, item) exactly as the one-machine reader's SQL does."""
    import importlib.util
    import os
    import sys

    from harness.procs import run_bounded

    require(importlib.util.find_spec("pyspark") is not None, "pyspark (the [spark] extra)")
    rows, *_ = _planted()
    _insert(conn, table, rows)
    spec = database.ReadSpec(table=database.TableSpec(table=table), half_life_days=30.0, as_of=AS_OF)
    expected, _ = database.read_interactions(DSN, spec)
    code, _, err, _ = run_bounded(
        [sys.executable, "-m", "reco_sidecar", "train", "--engine", "spark", "--spark-master", "local[2]",
         "--dsn", DSN, "--table", table, "--half-life-days", "30", "--as-of", AS_OF.isoformat(),
         "--jdbc-partitions", "3", "--model-root", str(tmp_path), "--name", "uro", "--factors", "8",
         "--iterations", "5", "--holdout", "0", "--exact-neighbours", "0", "--ann-trees", "5"],
        900.0, env=dict(os.environ))
    assert code == 0, err[-3000:]
    model = loader.open_model(tmp_path / "uro" / "1")
    assert list(model.users.ids) == expected.user_ids
    assert list(model.items.ids) == expected.item_ids
    np.testing.assert_array_equal(model.seen_indptr, expected.matrix.indptr)
    np.testing.assert_array_equal(model.seen_indices, expected.matrix.indices)
    for user in range(len(expected.user_ids)):
        _, values = model.history(user)
        start, end = expected.matrix.indptr[user], expected.matrix.indptr[user + 1]
        np.testing.assert_allclose(values, expected.matrix.data[start:end], rtol=1e-6)
    man = manifest_mod.read(tmp_path / "uro" / "1")
    assert man.training["engine"] == "spark" and man.training["jdbc_partitions"] == 3
    assert man.source["kind"] == "database" and man.as_of == AS_OF.timestamp()
