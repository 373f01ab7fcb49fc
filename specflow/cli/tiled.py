"""Connecting the CLI to a Tiled server, with one-line errors for the usual mistakes."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from tiled.client import from_uri

from specflow.annotate.retry import auth_problem
from specflow.ingest.catalog import parse_key_values, require_reachable


def parse_query(items: list[str] | None) -> dict[str, Any]:
    """``--query KEY=VALUE`` options as a dict (see :func:`parse_key_values`)."""
    try:
        return parse_key_values(items)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def connect(tiled_uri: str, api_key: str | None) -> Any:
    """A Tiled client, or a clear error about the URI, the server or the key."""
    require_reachable(tiled_uri)  # ConnectionError: one line from the CLI's error boundary
    try:
        return from_uri(tiled_uri, api_key=api_key)
    except Exception as exc:
        problem = auth_problem(exc)
        if problem is None:
            raise
        Console(stderr=True).print(f"[red]error:[/] {problem} ({exc})", soft_wrap=True)
        raise typer.Exit(2) from exc
