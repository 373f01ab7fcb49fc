"""Every option of the ``specflow`` CLI that more than one command takes, defined once.

Commands annotate their parameters with these aliases; ``python -m specflow.cli.mlproject``
(the MLproject entry points) passes its parameters to the same commands, so an option's
name, default check and help text live here only.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from specflow.cli.lazy import load
from specflow.learn.names import LABEL_STRATEGIES, METHODS, SSL_METHODS
from specflow.registry.names import DEFAULT_ALIAS, DEFAULT_MODEL_NAME, DEFAULT_MODEL_URI

Method = StrEnum("Method", {m: m for m in ("auto", *METHODS)})  # type: ignore[misc]
SSLMethod = StrEnum("SSLMethod", {m: m for m in SSL_METHODS})  # type: ignore[misc]
LabelStrategy = StrEnum("LabelStrategy", {s: s for s in LABEL_STRATEGIES})  # type: ignore[misc]
TrainPreset = StrEnum("TrainPreset", {"quick": "quick", "paper": "paper"})  # type: ignore[misc]

__all__ = ["DEFAULT_ALIAS", "DEFAULT_MODEL_NAME", "DEFAULT_MODEL_URI"]
label_rules = load("specflow.data.labels")


def fraction(value: float | None) -> float | None:
    """Typer callback: a fraction in [0, 1] (0: no labels, the corpus alone)."""
    if value is not None and not 0 <= value <= 1:
        raise typer.BadParameter(f"{value} is not in [0, 1]: give a fraction such as 0.03")
    return value


def corpus_spec(value: str | None) -> str | None:
    """Typer callback: ``none`` → None; ``auto`` and transition names pass (the classifier
    checks the name)."""
    return None if value is None or value.casefold() == "none" else value


# --- where the curves come from -----------------------------------------------------------
DataOpt = Annotated[list[str] | None, typer.Option(
    "--data", help="Runs: a file (.nc, .h5/.nxs, .csv), a folder of one run's text files "
    "(.xy/.dat/.chi/.fxye, a curve per file), a folder of runs, or a quoted glob like "
    "'runs/*.nc'; repeatable. Paths are taken as given (spaces, commas and brackets are "
    "fine).")]
EnergyOpt = Annotated[float | None, typer.Option(
    "--energy", min=1.0, max=200.0,
    help="Beam energy (keV) of runs whose files do not say it (or say it wrong).")]
WavelengthOpt = Annotated[float | None, typer.Option(
    "--wavelength", min=0.05, max=5.0, help="Beam wavelength (Å), instead of --energy.")]
RadialUnitOpt = Annotated[str | None, typer.Option(
    "--radial-unit", help="Radial unit of text files whose header does not name it: "
    "2th_deg (the default), 2th_rad, q_nm^-1, q_A^-1 or d_A.")]
LabelsOpt = Annotated[Path | None, typer.Option(
    "--labels", help="Labels CSV: a 'label' column (0/1/2 or before/during/after) and a "
    "'file' (text file name) or 'curve' (index; with 'run' for several runs) column.")]
BeforeBelowOpt = Annotated[float | None, typer.Option(
    "--before-below", help="Label compression curves below this pressure (GPa) 'before'.")]
AfterAboveOpt = Annotated[float | None, typer.Option(
    "--after-above", help="Label compression curves above this pressure (GPa) 'after'.")]


def read_options(energy: float | None = None, wavelength: float | None = None,
                 radial_unit: str | None = None) -> dict:
    """The reader's keyword arguments from the CLI's beam and unit options."""
    return {"energy_kev": energy, "wavelength": wavelength, "radial_unit": radial_unit}


def label_spec(labels: Path | None = None, before_below: float | None = None,
               after_above: float | None = None):
    """A :class:`~specflow.data.labels.LabelSpec` from the CLI's label options (None when
    none is given)."""
    if labels is None and before_below is None and after_above is None:
        return None
    return label_rules.LabelSpec(labels, before_below, after_above)
TiledUriOpt = Annotated[str | None, typer.Option(
    "--tiled-uri", envvar="TILED_URI", help="Read runs from this Tiled server instead.")]
TiledServerOpt = Annotated[str, typer.Option(
    "--tiled-uri", envvar="TILED_URI", help="Tiled server, e.g. http://127.0.0.1:8000")]
ApiKeyOpt = Annotated[str | None, typer.Option(
    "--api-key", envvar="TILED_API_KEY", help="Tiled API key (writing needs it).")]
LayoutOpt = Annotated[str | None, typer.Option(
    "--layout", help="How the Tiled runs store their curves: specflow (default: detected), "
    "pdfstream (NSLS-II XPD/PDF: <det>_chi_I on <det>_chi_2theta) or pyfai (per-event q and "
    "I arrays).")]
RunOpt = Annotated[list[str] | None, typer.Option("--run", help="Tiled run uid (repeatable).")]
QueryOpt = Annotated[list[str] | None, typer.Option(
    "--query", help="Tiled metadata query KEY=VALUE, e.g. start.sample=Fe (repeatable).")]

# --- training ----------------------------------------------------------------------------
MethodOpt = Annotated[Method, typer.Option(
    help="auto (default): the network trained on the transition's simulated corpus when "
    "there is one (--corpus), else the linear probe on the curves (raw). Linear probes on: "
    "rrmoco, rr, moco, selftime (pretrained on the runs), untrained (a seeded random "
    "encoder), reference (the released encoder), raw; or a network trained end to end: "
    "cnn, fnn, resnet, convsc (on the corpus when there is one), lstm, transformer, "
    "convsct, binned (transformer and convsct read whole runs: transductive).")]
CorpusOpt = Annotated[str | None, typer.Option(
    "--corpus", callback=corpus_spec,
    help="Simulated corpus of the transition: auto (default: the built-in transition the "
    "runs' attrs name), none, or names joined by + (Fe, FeO, Fe+FeO), with the pressure "
    "marker loaded with the sample if you know it (Fe+Au, Fe+Pt; by default each corpus run "
    "draws none, Au or Pt; Fe+none: no marker). Built once and cached "
    "($SPECFLOW_CACHE, default ~/.cache/specflow).")]
SSLMethodOpt = Annotated[SSLMethod, typer.Option(
    "--method", help="rrmoco, rr, moco or selftime.")]
EpochsOpt = Annotated[int | None, typer.Option(
    min=1, help="Pretraining epochs (default from --preset).")]
PresetOpt = Annotated[TrainPreset, typer.Option(help="quick (CPU minutes) or paper (GPU).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
LabelFractionOpt = Annotated[float | None, typer.Option(
    callback=fraction, help="Reveal only this fraction of each run's labelled curves "
    "(0 ≤ f ≤ 1; class-blind, evenly spaced; 0: none, the corpus alone) and score on the "
    "rest: for fully labelled simulated runs. Default: every given label trains the model.")]
HoldoutOpt = Annotated[float, typer.Option(
    min=0.0, max=0.9, help="Keep this fraction of the given labels out of training to report "
    "metrics (default 0: every label trains the model you deploy).")]

# --- the registry ------------------------------------------------------------------------
NameOpt = Annotated[str, typer.Option("--name", help="Registered model name.")]
AliasOpt = Annotated[str, typer.Option(
    "--alias", help="Alias to promote to (champion, challenger).")]
EvalDataOpt = Annotated[list[Path] | None, typer.Option(
    "--eval-data", help="Labelled evaluation files for the promotion gate (default: the "
    "fixed simulated Fe+FeO gate set).")]
ModelUriOpt = Annotated[str, typer.Option(
    "--model", help="Registered model: models:/<name>@<alias> or models:/<name>/<version>.")]
WorkdirOpt = Annotated[Path, typer.Option(
    "--workdir", help="Embedded MLflow store location when MLFLOW_TRACKING_URI is unset.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON.")]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", min=0.0, help="Stop after this many seconds (default: never)")]
