"""``specflow evaluate``: the benchmark protocols on files (registered by specflow.cli with
``cls=ManyValuesCommand``, so ``--data a.nc b.nc --test c.nc d.nc`` takes several files after
one flag)."""

from __future__ import annotations

import warnings
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from specflow.cli.lazy import load
from specflow.cli.options import (
    AfterAboveOpt,
    BeforeBelowOpt,
    CorpusOpt,
    DeviceOpt,
    EnergyOpt,
    JsonOpt,
    LabelsOpt,
    LabelStrategy,
    Method,
    MethodOpt,
    RadialUnitOpt,
    SeedOpt,
    WavelengthOpt,
    fraction,
    label_spec,
    read_options,
)
from specflow.learn.names import DEFAULT_METHOD

fingerprint = load("specflow.data.fingerprint")
protocols = load("specflow.learn.evaluate")


class ManyValuesCommand(TyperCommand):
    """A command whose list options (``--data``, ``--test``) take every value up to the next
    option: ``--data a b --test c`` reads as ``--data a --data b --test c``."""

    many_values = ("--data", "--test")

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        out, current = [], None
        for token in args:
            if token in self.many_values:
                current = token
                continue
            if token.startswith("-"):
                current = None
            elif current is not None:
                out.append(current)
            out.append(token)
        return super().parse_args(ctx, out)


def results_table(result: dict) -> Table:
    """Rich table of the protocol's scores per file and overall, controls below; the
    ambiguity column is the boundary-ambiguity width (no labels used, see
    :func:`~specflow.learn.metrics.ambiguity_width`)."""
    labels = "/".join(map(str, result.get("labels_per_class", [])))
    table = Table(title=f"{result['method']}, {result['protocol']}: {result['n_labels']} labels "
                        f"({100 * result['label_fraction']:.1f} %, "
                        f"{result.get('label_strategy', 'even')}; per class {labels})")
    for col in ("file", "curves", "precision", "recall", "during recall", "onset err (GPa)",
                "end err (GPa)", "boundary err (curves)", "acc. outside ±2"):
        table.add_column(col, justify="left" if col == "file" else "right")

    def row(name: str, m: dict, style: str | None = None) -> None:
        def pct(key: str) -> str:
            return "—" if m.get(key) is None else f"{100 * m[key]:.2f} %"

        def num(key: str, digits: int) -> str:
            return "—" if m.get(key) is None else f"{m[key]:.{digits}f}"

        table.add_row(name, str(m.get("n", "")), pct("precision"), pct("recall"),
                      pct("during_recall"), num("onset_error_gpa", 2),
                      num("end_error_gpa", 2), num("boundary_error_curves", 1),
                      pct("accuracy_outside_boundaries"), style=style)

    for name, m in result["files"].items():
        row(name, m)
    row("overall", result["overall"], "bold")
    for name, m in result.get("baselines", {}).items():
        row(f"control: {name}", m, "dim")
    if "ceiling" in result:
        row("ceiling: ideal observer", result["ceiling"], "italic")
    return table


def evaluate_command(
    data: Annotated[list[str], typer.Option(
        "--data", help="Runs to fit on: files (.nc, .h5/.nxs, .csv), folders of a run's text "
                       "files, folders of runs or quoted globs; several after one flag.")],
    test: Annotated[list[str] | None, typer.Option(
        "--test", help="Whole runs the model never sees (cross-run protocol): scored only. "
                       "Several after one flag. Without it: within-run on --data.")] = None,
    method: MethodOpt = Method(DEFAULT_METHOD),
    corpus: CorpusOpt = "auto",
    label_fraction: Annotated[
        float, typer.Option("--label-fraction", callback=fraction,
                            help="Fraction of each --data run's curves whose labels the "
                            "model sees (0: zero-label mode, needs a corpus).")
    ] = 0.03,
    label_strategy: Annotated[LabelStrategy, typer.Option(
        "--label-strategy",
        help="even: evenly spaced in acquisition order, blind to the classes (default); "
             "stratified: per class, spread (uses the classes; the paper's protocol); "
             "suggest: half even, the rest where the probe is least sure.",
    )] = LabelStrategy.even,
    epochs: Annotated[int | None, typer.Option(min=1, help="Pretraining epochs.")] = None,
    augmentation: Annotated[str | None, typer.Option(
        help="Augmentation group (release, xrd, G0, G1, G2, physics); default: the "
             "preset's (xrd on CPU, release with the paper preset on GPU).",
    )] = None,
    baselines: Annotated[bool, typer.Option(
        "--baselines", help="Also score the controls (pressure only, nearest labelled "
                            "neighbour, raw curves, untrained encoder, and the released "
                            "encoder with SPECFLOW_REFERENCE_DIR) on the same labels, and "
                            "the method's paired difference to each.")] = False,
    ceiling: Annotated[bool, typer.Option(
        "--ceiling/--no-ceiling", help="Score the ideal observer on test runs simulated by "
                                       "specflow (their truth is rebuilt).")] = True,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = None,
    labels: LabelsOpt = None,
    before_below: BeforeBelowOpt = None,
    after_above: AfterAboveOpt = None,
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
) -> None:
    """Score a method with few labels: within each run, or with --test on unseen runs.

    Fit the model (the corpus network adapted to the labels, a probe or a network on them);
    decode each run; score within-run or, with --test, on whole unseen runs. A --test run
    that is also a --data run is refused."""
    paths = list(data)
    test_paths = list(test or [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            result = protocols.evaluate(
                paths, test_paths or None, method=str(method), corpus=corpus,
                label_fraction=label_fraction, epochs=epochs, seed=seed, device=device,
                json_out=json_out, label_strategy=str(label_strategy),
                augmentation=augmentation, baselines=baselines, ceiling=ceiling,
                read=read_options(energy, wavelength, radial_unit),
                labels=label_spec(labels, before_below, after_above))
        except fingerprint.TrainingRunInTest as err:
            Console(stderr=True).print(f"[red]refused:[/] {err}", soft_wrap=True,
                                       highlight=False)
            raise typer.Exit(2) from None
    for w in caught:
        if "looks like a copy" in str(w.message):
            Console(stderr=True).print(f"[yellow]warning:[/] {w.message}", soft_wrap=True,
                                       highlight=False)
    Console().print(results_table(result))
