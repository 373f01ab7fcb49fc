"""Selecting runs in a Tiled catalog: ``KEY=VALUE`` options and the generic search."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


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
    from tiled.client.container import Container

    for q in queries:
        node = Container.search(node, q)
    return node
