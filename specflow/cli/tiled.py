"""Connecting the CLI to a Tiled server, with one-line errors for the usual mistakes."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from specflow.cli.lazy import load

tiled_client = load("tiled.client")
retry = load("specflow.annotate.retry")
catalog = load("specflow.ingest.catalog")


def parse_query(items: list[str] | None) -> dict[str, Any]:
    """``--query KEY=VALUE`` options as a dict (see
    :func:`~specflow.ingest.catalog.parse_key_values`)."""
    try:
        return catalog.parse_key_values(items)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def connect(tiled_uri: str, api_key: str | None) -> Any:
    """A Tiled client, or a clear error about the URI, the server or the key."""
    catalog.require_reachable(tiled_uri)  # ConnectionError: one line from the CLI's error boundary
    try:
        return tiled_client.from_uri(tiled_uri, api_key=api_key)
    except Exception as exc:
        problem = retry.auth_problem(exc)
        if problem is None:
            raise
        detail = server_detail(exc)
        Console(stderr=True).print(f"[red]error:[/] {problem}"
                                   + (f" (server: {detail})" if detail else ""), soft_wrap=True)
        raise typer.Exit(2) from exc


def server_detail(exc: BaseException) -> str | None:
    """The server's own one-line reason for refusing a request (its JSON ``detail``), if any:
    not the client's multi-line advice."""
    response = getattr(exc, "response", None)
    try:
        detail = response.json().get("detail") if response is not None else None
    except ValueError:
        return None
    return " ".join(str(detail).split()) if detail else None
