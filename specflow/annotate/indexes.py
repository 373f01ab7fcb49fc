"""PostgreSQL indexes for the searches specflow runs on a Tiled catalog.

Tiled indexes a run's metadata for equality (a GIN index, ``metadata @> {...}``: sample,
model version); onset-pressure ranges and "is annotated" tests are range and presence
predicates on JSON paths, which that index cannot serve. :func:`create_indexes` adds one
expression index per such path (matching the SQL Tiled emits, ``metadata #> '{...}'``) and
makes the database plan each query with its actual path (``plan_cache_mode =
force_custom_plan``: a generic plan cannot match an expression index; it applies to new
connections, so restart Tiled afterwards). Indexes are built ``CONCURRENTLY``: a live
catalog keeps taking writes meanwhile. Safe to run again.
SQLite catalogs need nothing (tiled keeps them small and local).
"""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

#: name -> (indexed expression or columns, partial-index condition or None); the paths are
#: spelled as Tiled's queries spell them (``metadata #> '{...}'::text[]``)
PATHS = {
    "specflow_onset_pressure": ("(metadata #> '{specflow,transition,onset_pressure}'::text[])",
                                None),
    "specflow_end_pressure": ("(metadata #> '{specflow,transition,end_pressure}'::text[])",
                              None),
    "specflow_annotated": ("parent, id", "(metadata #> '{specflow,latest}'::text[]) IS NOT NULL"),
    "specflow_identified": ("parent, id", "(metadata #> '{specflow,identified,"
                            "library_version}'::text[]) IS NOT NULL"),
}
INDEXES = {name: f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON nodes ({what})"
           + (f" WHERE {where}" if where else "") for name, (what, where) in PATHS.items()}


def sync_uri(database_uri: str) -> str:
    """``postgresql[+asyncpg]://...`` as a synchronous (psycopg2) SQLAlchemy URI."""
    try:
        url = make_url(database_uri)
    except ArgumentError as exc:
        raise ValueError(f"not a database URI: {database_uri!r}") from exc
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
