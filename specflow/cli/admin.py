"""``specflow admin``: one-off operations on the servers of a deployment."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from specflow.cli.lazy import load

indexes = load("specflow.annotate.indexes")

admin_app = typer.Typer(help="Operate a deployment: database indexes for catalog searches.",
                        no_args_is_help=True)


@admin_app.command("create-indexes")
def create_indexes_cmd(
    database: Annotated[str, typer.Option(
        "--database", envvar="SPECFLOW_TILED_CATALOG",
        help="The Tiled catalog's PostgreSQL URI (the 'uri' in Tiled's config), e.g. "
        "postgresql://tiled:PASSWORD@db:5432/tiled")],
) -> None:
    """Create the PostgreSQL indexes that 'specflow phases' searches use (idempotent)."""
    try:
        names = indexes.create_indexes(database)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--database") from None
    Console().print(f"indexes in place: {', '.join(names)}")
