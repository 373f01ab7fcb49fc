"""Selecting runs in a Tiled catalog: ``KEY=VALUE`` options and the generic search."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx
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
