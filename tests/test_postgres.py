"""Tiled with its catalog and tables in a real PostgreSQL server (the facility deployment):
ingest through a RunEngine, read back, annotate, search, restart."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import record_ramp
from tiled.queries import Key

from specflow.annotate import annotate, find_phases
from specflow.ingest import run_to_dataset
from specflow.ingest.catalog import search
from specflow.servers.tiled import tiled_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def pg_tiled(postgres, tmp_path_factory):
    """(catalog URI, tables URI, directory) of a Tiled deployment kept in PostgreSQL."""
    catalog = postgres.create_database("tiled")
    tables = postgres.create_database("tiled_tables")
    return catalog, tables, tmp_path_factory.mktemp("pg-tiled")


def test_postgres_catalog_ingests_annotates_searches_and_survives_restart(
        postgres, pg_tiled, mlflow_store):
    catalog, tables, directory = pg_tiled
    with tiled_server(directory, catalog_uri=catalog, tables_uri=tables) as info:
        client = info.client()
        fe = record_ramp(client, stop=30.0, num=40, seed=5, md={"sample": "pg-fe"})
        flat = record_ramp(client, stop=8.0, num=12, seed=6, md={"sample": "pg-flat"})
        ds = run_to_dataset(client[fe])
        assert ds.sizes == {"curve": 40, "two_theta": 4000}
        assert np.all(np.diff(ds["pressure"].values) > 0)
        results = annotate(client, [fe, flat], model_uri=mlflow_store.champion)
        assert [r.status for r in results] == ["written", "written"]
        onset = client[fe].metadata["specflow"]["transition"]["onset_pressure"]
        assert onset is not None and 5 < onset < 25
        hits = find_phases(client, onset_between=(onset - 1, onset + 1))
        assert [r.uid for r in hits] == [fe]
        assert {r.uid for r in find_phases(client, phase=2)} == {fe}  # the flat run: 0 only
        assert {r.uid for r in find_phases(client, phase=0)} == {fe, flat}
        assert [r.uid for r in find_phases(client, sample="pg-flat")] == [flat]
        # numbers compare as numbers in PostgreSQL's JSONB (SQLite compares their text)
        assert set(search(client, Key("specflow.n_curves") > 20)) == {fe}
        assert set(search(client, Key("specflow.n_curves") < 20)) == {flat}
    # everything lives in the databases: tables (events) in one, nodes in the other
    assert int(postgres.sql("tiled", "SELECT count(*) FROM nodes")) > 10
    assert postgres.sql("tiled_tables", "SELECT count(*) FROM information_schema.tables "
                        "WHERE table_schema = 'public'").strip() != "0"
    assert not (directory / "catalog.db").exists()
    with tiled_server(directory, catalog_uri=catalog, tables_uri=tables) as info:
        client = info.client()
        assert {fe, flat} <= set(client)
        again = run_to_dataset(client[fe])
        np.testing.assert_array_equal(again["intensity"].values, ds["intensity"].values)
        node = client[fe]["specflow"][client[fe].metadata["specflow"]["latest"]]
        assert node["label"].read().shape == (40,)
        skipped = annotate(client, [fe], model_uri=mlflow_store.champion)
        assert skipped[0].status == "skipped"


def test_postgres_indexes_serve_the_onset_range_query_tiled_emits(postgres, pg_tiled, cli):
    """`specflow admin create-indexes` creates expression indexes that the planner uses
    for the SQL Tiled sends for a find_phases onset range (path and value as parameters)."""
    catalog, tables, directory = pg_tiled
    with tiled_server(directory, catalog_uri=catalog, tables_uri=tables):
        pass  # the catalog's tables exist (also when this test runs alone)
    out = cli(["admin", "create-indexes", "--database", catalog])
    assert "specflow_onset_pressure" in out
    cli(["admin", "create-indexes", "--database", catalog])  # idempotent
    cli(["admin", "create-indexes", "--database", "sqlite:///x.db"], exit_code=2)
    # The statement Tiled's comparison compiles to on PostgreSQL (asyncpg, custom plans):
    #   WHERE (nodes.metadata #> $1) >= $2::JSONB
    plan = postgres.sql("tiled", """
        SET plan_cache_mode = force_custom_plan;
        SET enable_seqscan = off;
        PREPARE onset(text[], jsonb) AS SELECT id FROM nodes WHERE (metadata #> $1) >= $2;
        EXPLAIN EXECUTE onset('{specflow,transition,onset_pressure}', '10');""")
    assert "specflow_onset_pressure" in plan, plan
    setting = postgres.sql("tiled", "SELECT setconfig FROM pg_db_role_setting s JOIN "
                           "pg_database d ON d.oid = s.setdatabase WHERE datname = 'tiled'")
    assert "plan_cache_mode=force_custom_plan" in setting
