"""An embedded, writable Tiled server for demos and tests (SQLite or PostgreSQL catalog).

Tiled's public route, :class:`tiled.server.SimpleTiledServer`, serves only a SQLite catalog
and initialises it through ``catalog_from_uri(init_if_not_exists=True)``, which runs
``tiled catalog init`` in a subprocess (seconds per start; the tests start dozens of
servers). Here a SQLite catalog is initialised in-process, as ``tiled serve catalog --temp``
does, and a PostgreSQL catalog (not offered by SimpleTiledServer) goes through the public
``catalog_from_uri``. The in-process initialisation uses tiled internals
(``initialize_database``, ``stamp_head``), so tiled is pinned below 0.3 (0.2.20 is the
newest release).
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import uvicorn
from sqlalchemy.ext.asyncio import create_async_engine
from tiled.alembic_utils import stamp_head
from tiled.catalog import from_uri as catalog_from_uri
from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
from tiled.catalog.core import initialize_database
from tiled.client import from_uri
from tiled.config import Authentication, StreamingCacheConfig
from tiled.media_type_registration import default_serialization_registry
from tiled.server.app import build_app
from tiled.server.logging_config import LOGGING_CONFIG
from tiled.server.settings import get_settings
from tiled.utils import ensure_specified_sql_driver, import_object

CATALOG_FILENAME = "catalog.db"
FRAMES_DIRNAME = "frames"  # detector files the server may read (external data)
BLUESKY_SPECS = [("CatalogOfBlueskyRuns", "3.0")]
JSON_SEQ_EXPORTER = "bluesky_tiled_plugins.exporters:json_seq_exporter"


@dataclass(frozen=True)
class TiledServerInfo:
    """Where a running server lives. ``uri`` embeds the API key (``?api_key=``)."""

    base_url: str
    api_key: str
    directory: Path

    @property
    def api_uri(self) -> str:
        return f"{self.base_url}/api/v1"

    @property
    def uri(self) -> str:
        return f"{self.api_uri}?api_key={quote_plus(self.api_key)}"

    @property
    def frames(self) -> Path:
        """Where detectors may write files that the server registers as external data."""
        return self.directory / FRAMES_DIRNAME

    def client(self):  # -> tiled.client.container.Container
        """A fresh Tiled client (``CatalogOfBlueskyRuns`` at the root)."""

        return from_uri(self.api_uri, api_key=self.api_key)


def init_catalog(database_uri: str) -> None:
    """Create the catalog tables and stamp the alembic revision, in this process."""

    database_uri = ensure_specified_sql_driver(database_uri)

    async def create() -> None:
        engine = create_async_engine(database_uri)
        try:
            await initialize_database(engine)
        finally:
            await engine.dispose()

    asyncio.run(create())
    with warnings.catch_warnings():  # alembic's legacy path_separator notice
        warnings.simplefilter("ignore", DeprecationWarning)
        stamp_head(ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR, database_uri)


def build_tiled_app(directory: Path, api_key: str, catalog_uri: str | None = None,
                    tables_uri: str | None = None, tables: bool = True):
    """The ASGI app: Bluesky-aware root, catalog, zarr + table storage, json-seq.

    Defaults: SQLite catalog ``directory/catalog.db`` and DuckDB tables
    ``directory/storage.duckdb``. ``catalog_uri``/``tables_uri`` put either in PostgreSQL
    (``postgresql://user:password@host:port/db``); Tiled creates its tables on first use.
    ``tables=False`` serves no table storage (as ``tiled serve catalog -w DIR`` alone does).
    Externally written files (detector HDF5 registered by TiledWriter) are served from
    ``directory/frames``.
    """

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    (directory / FRAMES_DIRNAME).mkdir(exist_ok=True)
    init = False
    if catalog_uri is None:
        database = directory / CATALOG_FILENAME
        catalog_uri = f"sqlite:///{database}"
        if not database.exists():
            init_catalog(catalog_uri)
    else:
        init = True  # tiled's own `catalog init --if-not-exists` (a short subprocess)
    catalog = catalog_from_uri(
        catalog_uri,
        specs=[{"name": name, "version": v} for name, v in BLUESKY_SPECS],
        writable_storage=[directory / "data"] + (
            [tables_uri or f"duckdb:///{directory / 'storage.duckdb'}"] if tables else []),
        readable_storage=[directory / FRAMES_DIRNAME],
        init_if_not_exists=init,
        cache_config=StreamingCacheConfig(uri="memory").model_dump(),
    )
    serializers = copy.deepcopy(default_serialization_registry)
    serializers.register("BlueskyRun", "application/json-seq", import_object(JSON_SEQ_EXPORTER))
    app = build_app(
        catalog,
        authentication=Authentication(single_user_api_key=api_key),
        serialization_registry=serializers,
    )
    _isolate_settings(app)
    return app


def _isolate_settings(app) -> None:
    """Give ``app`` its own copy of tiled's settings.

    tiled 0.2.20 writes each app's auth options (e.g. the API key) into one process-global
    ``Settings`` object, so a second in-process server would silently change the first
    one's key. Snapshot this app's settings and serve them to it alone.
    """

    own = app.dependency_overrides[get_settings]().model_copy()
    app.dependency_overrides[get_settings] = lambda: own


def _quiet_log_config(directory: Path) -> dict:

    config = copy.deepcopy(LOGGING_CONFIG)
    for handler, filename in (("access", "access.log"), ("default", "error.log")):
        config["handlers"][handler]["class"] = "logging.FileHandler"
        config["handlers"][handler].pop("stream", None)
        config["handlers"][handler]["filename"] = str(directory / filename)
    return config


@contextmanager
def tiled_server(
    directory: str | Path, api_key: str | None = None, port: int = 0, timeout: float = 20.0,
    catalog_uri: str | None = None, tables_uri: str | None = None, tables: bool = True,
) -> Iterator[TiledServerInfo]:
    """Serve a writable Tiled catalog from ``directory`` on 127.0.0.1 while in the block.

    Layout under ``directory``: ``catalog.db`` (SQLite), ``data/`` (zarr), ``storage.duckdb``
    (appendable tables), ``access.log``/``error.log``. Reusing a directory keeps its runs.
    ``catalog_uri``/``tables_uri`` move the catalog and the tables to PostgreSQL (see
    :func:`build_tiled_app`); the arrays stay under ``directory/data``. Detector files
    under ``directory/frames`` (:attr:`TiledServerInfo.frames`) can be registered as
    external data.
    The server thread is a daemon and is always stopped on exit, so a failing caller cannot
    hang the interpreter.
    """
    directory = Path(directory).resolve()
    api_key = api_key or secrets.token_hex(16)
    app = build_tiled_app(directory, api_key, catalog_uri, tables_uri, tables)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio",
                            log_config=_quiet_log_config(directory))
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, name="tiled-server", daemon=True)
    thread.start()
    try:
        base_url = _wait_until_ready(server, thread, timeout)
        yield TiledServerInfo(base_url=base_url, api_key=api_key, directory=directory)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait_until_ready(server: uvicorn.Server, thread: threading.Thread, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("Tiled server failed to start; see error.log in its directory")
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    base_url = f"http://{host}:{port}"
    with httpx.Client(trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                    return base_url
            except httpx.RequestError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"Tiled server at {base_url} did not become ready in {timeout} s")
