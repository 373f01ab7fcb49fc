"""Typer command functions for the ``specflow`` CLI (registered by specflow.cli).

Register with ``app.command("evaluate", context_settings=EVALUATE_CONTEXT)(evaluate_command)``;
the context settings let ``--data a.nc b.nc`` take several files after one flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

EVALUATE_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": False}


def results_table(result: dict) -> Table:
    """Rich table of weighted precision/recall per file and overall."""
    table = Table(title=f"{result['method']}: {result['n_labels']} labels "
                        f"({100 * result['label_fraction']:.1f} %, "
                        f"{result.get('label_strategy', 'spread')})")
    for col in ("file", "curves", "precision", "recall", "accuracy"):
        table.add_column(col, justify="left" if col == "file" else "right")
    rows = [*result["files"].items(), ("overall", result["overall"])]
    for name, m in rows:
        table.add_row(name, str(m["n"]), f"{100 * m['precision']:.2f} %",
                      f"{100 * m['recall']:.2f} %", f"{100 * m['accuracy']:.2f} %",
                      style="bold" if name == "overall" else None)
    return table


def evaluate_command(
    ctx: typer.Context,
    data: Annotated[list[Path], typer.Option("--data", help="Spectra files (.nc, .csv, …).")],
    method: Annotated[str, typer.Option(help="rrmoco, rr, moco, selftime or raw.")] = "rrmoco",
    label_fraction: Annotated[
        float, typer.Option("--label-fraction", help="Fraction of labels revealed per file.")
    ] = 0.03,
    label_strategy: Annotated[str, typer.Option(
        "--label-strategy",
        help="spread: labels spread through each file (paper); suggest: a few spread, the "
             "rest where the probe is least sure (as when labelling specflow's suggestions).",
    )] = "spread",
    epochs: Annotated[int | None, typer.Option(help="Pretraining epochs.")] = None,
    augmentation: Annotated[str | None, typer.Option(
        help="Augmentation group (release, xrd, G0, G1, G2, physics); default: the "
             "preset's (xrd on CPU, release with the paper preset on GPU).",
    )] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results as JSON.")] = None,
) -> None:
    """Pretrain on all curves (labels hidden), probe with few labels, report precision/recall."""
    from specflow.learn.evaluate import evaluate

    paths = [*data, *(Path(a) for a in ctx.args)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise typer.BadParameter(f"no such file(s): {', '.join(missing)}", param_hint="--data")
    result = evaluate(paths, method=method, label_fraction=label_fraction, epochs=epochs,
                      seed=seed, device=device, json_out=json_out,
                      label_strategy=label_strategy, augmentation=augmentation)
    Console().print(results_table(result))
