"""CLI command that queries annotated runs: phases. It imports only the Tiled client and the
query module, so it answers without loading torch, MLflow or the simulator."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from specflow.annotate.query import find_phases
from specflow.cli.options import ApiKeyOpt, TiledServerOpt
from specflow.cli.tiled import connect


def _pm(value: float | None, unc: float | None) -> str:
    return "" if value is None else f"{value:.2f} ± {unc or 0:.2f}"


def phases_cmd(
    tiled_uri: TiledServerOpt,
    api_key: ApiKeyOpt = None,
    onset_between: Annotated[tuple[float, float] | None, typer.Option(
        "--onset-between", help="Onset pressure range (GPa): LOW HIGH")] = None,
    phase: Annotated[str | None, typer.Option(
        "--phase", help="Phase present: 0, 1 or 2 (before, during, after), or an identified "
        "phase by name, e.g. 'Fe hcp'")] = None,
    above: Annotated[float | None, typer.Option(
        "--above", help="With a phase name: identified at pressures reaching this (GPa)")
    ] = None,
    sample: Annotated[str | None, typer.Option("--sample", help="start.sample")] = None,
) -> None:
    """List annotated runs with their phases and transition pressures."""
    console = Console()
    client = connect(tiled_uri, api_key)
    label = int(phase) if phase in ("0", "1", "2") else None
    name = phase if phase is not None and label is None else None
    if above is not None and name is None:
        raise typer.BadParameter("--above needs --phase NAME", param_hint="--above")
    records = find_phases(client, onset_between=onset_between, phase=label, sample=sample,
                          identified=name, above=above)
    table = Table("run", "sample", "phases", "onset (GPa)", "end (GPa)", "model version",
                  "identified")
    for r in records:
        found = "; ".join(f"{seg}: {v.get('name')}" for seg, v in r.identified.items())
        table.add_row(r.uid, r.sample, ",".join(map(str, r.phases)),
                      _pm(r.onset_pressure, r.onset_uncertainty),
                      _pm(r.end_pressure, r.end_uncertainty), str(r.model_version), found)
    console.print(table)
