"""Selecting runs in a Tiled catalog (``KEY=VALUE`` options, the generic search) and
checking, before a run is written, that the server can store it."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable
from typing import Any

import httpx
import pyarrow as pa
from tiled.client.container import Container


def parse_key_values(items: Iterable[str] | None) -> dict[str, Any]:
    """``["start.sample=Fe", "start.scan_id=3"]`` → ``{"start.sample": "Fe", ...: 3}``.

    Values are read as JSON where they parse (numbers, booleans), else kept as text.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def search(node: Any, *queries: Any) -> Any:
    """Apply ``queries`` with the generic Tiled search, keys used exactly as given."""

    for q in queries:
        node = Container.search(node, q)
    return node


def unreachable(uri: str, timeout: float = 5.0) -> str | None:
    """Why the server at ``uri`` cannot be reached (one quick request, no retries), else None.

    Any HTTP answer, even an error, means it is reachable.
    """
    try:
        httpx.get(uri, timeout=timeout, follow_redirects=True)
    except httpx.TransportError as exc:
        return f"cannot reach Tiled at {uri}: {type(exc).__name__}: {exc}"
    except httpx.InvalidURL as exc:
        return f"invalid Tiled URI {uri!r}: {exc}"
    return None


def require_reachable(uri: str) -> None:
    """Raise ``ConnectionError`` (one line for the CLI) unless :func:`unreachable` passes."""
    down = unreachable(uri)
    if down is not None:
        raise ConnectionError(down)


def require_table_storage(client: Any) -> None:
    """Refuse, in one line (``ValueError``), a server that cannot store appendable tables —
    where TiledWriter puts every stream's events — before any document is written: a
    one-row table is written in a scratch container, which is deleted again."""
    key = f"specflow-preflight-{uuid.uuid4().hex[:12]}"
    try:
        scratch = client.create_container(key)
        table = scratch.create_appendable_table(schema=pa.schema([("x", pa.int64())]), key="t")
        table.append_partition(0, pa.table({"x": [1]}))
    except httpx.HTTPStatusError as exc:
        raise ValueError(
            f"Tiled at {client.uri} cannot store event tables (HTTP "
            f"{exc.response.status_code} writing a test table): serve the catalog with SQL "
            "table storage, e.g. `tiled serve catalog CATALOG.db -w DATA_DIR "
            "-w duckdb:///tables.duckdb` (or a PostgreSQL URI); nothing was written") from None
    finally:
        with contextlib.suppress(Exception):  # nothing to delete, or the server is gone
            client.delete_contents(key, recursive=True, external_only=False)

