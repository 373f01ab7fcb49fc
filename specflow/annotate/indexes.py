"""PostgreSQL indexes for the searches specflow runs on a Tiled catalog.

Tiled indexes a run's metadata for equality (a GIN index, ``metadata @> {...}``: sample,
model version); onset-pressure ranges and "is annotated" tests are range and presence
predicates on JSON paths, which that index cannot serve. :func:`create_indexes` adds one
expression index per such path (matching the SQL Tiled emits, ``metadata #> '{...}'``) and
makes the database plan each query with its actual path (``plan_cache_mode =
force_custom_plan``: a generic plan cannot match an expression index). Safe to run again.
SQLite catalogs need nothing (tiled keeps them small and local).
"""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

#: name -> CREATE INDEX statement (paths as Tiled's queries spell them)
INDEXES = {
    "specflow_onset_pressure": "CREATE INDEX IF NOT EXISTS specflow_onset_pressure ON nodes "
    "((metadata #> '{specflow,transition,onset_pressure}'::text[]))",
    "specflow_end_pressure": "CREATE INDEX IF NOT EXISTS specflow_end_pressure ON nodes "
    "((metadata #> '{specflow,transition,end_pressure}'::text[]))",
    "specflow_annotated": "CREATE INDEX IF NOT EXISTS specflow_annotated ON nodes (parent, id) "
    "WHERE (metadata #> '{specflow,latest}'::text[]) IS NOT NULL",
    "specflow_identified": "CREATE INDEX IF NOT EXISTS specflow_identified ON nodes "
    "(parent, id) WHERE (metadata #> '{specflow,identified,library_version}'::text[]) "
    "IS NOT NULL",
}


def sync_uri(database_uri: str) -> str:
    """``postgresql[+asyncpg]://...`` as a synchronous (psycopg2) SQLAlchemy URI."""
    url = make_url(database_uri)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"{url.get_backend_name()} catalog: specflow's indexes are for "
                         "PostgreSQL (a SQLite catalog needs none)")
    return url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def create_indexes(database_uri: str) -> list[str]:
    """Create specflow's indexes in the Tiled catalog database at ``database_uri`` (the
    ``uri`` of the catalog in Tiled's config); returns their names. Idempotent."""
    engine = create_engine(sync_uri(database_uri), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in INDEXES.values():
                conn.execute(text(statement))
            database = conn.execute(text("SELECT current_database()")).scalar_one()
            conn.execute(text(f'ALTER DATABASE "{database}" SET plan_cache_mode = '
                              "force_custom_plan"))
            conn.execute(text("ANALYZE nodes"))
    finally:
        engine.dispose()
    return list(INDEXES)
