"""CLI steps of the model lifecycle: pretrain, probe, register, promote, pipeline.

Each logs into ``MLFLOW_TRACKING_URI`` (or the embedded SQLite store under ``--workdir``)
and attaches to the run that ``mlflow run`` created, so the same commands serve the
MLproject entry points and interactive use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from specflow.cli.lazy import load
from specflow.cli.options import (
    DEFAULT_ALIAS,
    DEFAULT_MODEL_NAME,
    AfterAboveOpt,
    AliasOpt,
    ApiKeyOpt,
    BeforeBelowOpt,
    CorpusOpt,
    DataOpt,
    DeviceOpt,
    EnergyOpt,
    EpochsOpt,
    EvalDataOpt,
    HoldoutOpt,
    LabelFractionOpt,
    LabelsOpt,
    LayoutOpt,
    Method,
    MethodOpt,
    NameOpt,
    PresetOpt,
    QueryOpt,
    RadialUnitOpt,
    RunOpt,
    SeedOpt,
    SSLMethod,
    SSLMethodOpt,
    TiledUriOpt,
    TrainPreset,
    WavelengthOpt,
    WorkdirOpt,
    label_spec,
    read_options,
)
from specflow.learn.names import DEFAULT_METHOD, SSL_METHODS
from specflow.registry.names import DEFAULT_ENCODER_NAME

if TYPE_CHECKING:
    from specflow.registry.steps import TrainingData

fingerprint = load("specflow.data.fingerprint")
sources = load("specflow.data.sources")
fitting = load("specflow.learn.fitting")
promotion = load("specflow.registry.promotion")
steps = load("specflow.registry.steps")
encoder_registry = load("specflow.registry.encoder")
tracking = load("specflow.registry.tracking")

console = Console()


def load_data(data: list[str] | None, tiled_uri: str | None, api_key: str | None,
              runs: list[str] | None, query: list[str] | None, read: dict | None = None,
              labels=None, layout: str | None = None) -> TrainingData:
    """Files or Tiled runs -> TrainingData (exactly one source); ``read``: the reader's
    options, ``labels``: a :class:`~specflow.data.labels.LabelSpec` for file runs,
    ``layout``: how the Tiled runs store their curves."""
    if data and (runs or query):
        raise typer.BadParameter("give --data files or Tiled runs (--run/--query), not both")
    if data:  # files, even where TILED_URI is set for the commands that write to Tiled
        return steps.load_files(data, labels, **(read or {}))
    if tiled_uri and (runs or query):
        return steps.load_tiled(tiled_uri, api_key, list(runs or []), query or [], layout)
    raise typer.BadParameter("give --data files, or --tiled-uri with --run/--query")


def read_gate(eval_data: list[str] | None, read: dict) -> list | None:
    """The promotion gate's runs from ``--eval-data`` (None: the default gate set)."""
    return list(sources.read_runs(eval_data, **read).values()) if eval_data else None


def _config(method: str, epochs: int | None, seed: int, device: str, preset: str):
    # enum members as their plain values: what the library stores must load weights_only
    return fitting.default_config(str(method), epochs, seed, device, str(preset))


def pretrain_cmd(
    data: DataOpt = None,
    tiled_uri: TiledUriOpt = None,
    api_key: ApiKeyOpt = None,
    run: RunOpt = None,
    query: QueryOpt = None,
    method: SSLMethodOpt = SSLMethod.rrmoco,
    epochs: EpochsOpt = None,
    preset: PresetOpt = TrainPreset.quick,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    workdir: WorkdirOpt = Path("work"),
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
) -> str:
    """Self-supervised pretraining on unlabelled curves, tracked in MLflow; prints the run id."""
    training = load_data(data, tiled_uri, api_key, run, query,
                         read_options(energy, wavelength, radial_unit))
    run_id = steps.pretrain_run(training, _config(method, epochs, seed, device, preset), workdir)
    console.print(f"pretraining run {run_id}")
    return run_id


def probe_cmd(
    pretrain_run: Annotated[str, typer.Option(
        help="Run id of the pretraining run, or a registered encoder "
        "(models:/specflow-encoder@champion).")],
    data: DataOpt = None,
    tiled_uri: TiledUriOpt = None,
    api_key: ApiKeyOpt = None,
    run: RunOpt = None,
    query: QueryOpt = None,
    label_fraction: LabelFractionOpt = None,
    holdout: HoldoutOpt = 0.0,
    seed: SeedOpt = 0,
    workdir: WorkdirOpt = Path("work"),
    labels: LabelsOpt = None,
    before_below: BeforeBelowOpt = None,
    after_above: AfterAboveOpt = None,
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
) -> str:
    """Linear probe on a pretrained encoder with few labels; logs the pyfunc model."""
    training = load_data(data, tiled_uri, api_key, run, query,
                         read_options(energy, wavelength, radial_unit),
                         label_spec(labels, before_below, after_above))
    out = steps.probe_run(pretrain_run, training, label_fraction, seed, holdout, workdir)
    _print_metrics(out.metrics)
    console.print(f"probe run {out.run_id}, model {out.model_uri}")
    return str(out.run_id)


def register_encoder_cmd(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Pretraining checkpoint (.pt: 'specflow pretrain' logs one, "
        "benchmarks/ssl_budget.py writes one per epoch); default: the encoder shipped with "
        "specflow (SpecRRMoco on the ten built-in transitions).", exists=True,
        dir_okay=False, show_default=False)] = None,
    corpus: Annotated[Path | None, typer.Option(
        "--corpus-recipe", help="JSON of the corpus the encoder saw (ssl_budget.py's "
        "recipe.json), recorded with the version; default: the recipe saved in the "
        "checkpoint, if any.", exists=True, dir_okay=False)] = None,
    name: Annotated[str, typer.Option(
        "--name", help="Registered encoder name.")] = DEFAULT_ENCODER_NAME,
    alias: Annotated[str | None, typer.Option(
        "--alias", help="Also point this alias at the new version (no gate: an encoder is "
        "judged under a head, in benchmarks/accuracy.py).")] = None,
    workdir: WorkdirOpt = Path("work"),
) -> str:
    """Register a pretrained encoder so probes start from it instead of pretraining."""
    tracking.configure_tracking(workdir)  # an embedded store under --workdir if none is set
    recipe = json.loads(corpus.read_text()) if corpus else None
    version = encoder_registry.register_encoder(checkpoint or encoder_registry.SHIPPED_ENCODER,
                                                recipe, name, alias)
    where = f" ({name}@{alias})" if alias else ""
    console.print(f"registered {name} version {version}{where}: probe it with --pretrain-run "
                  f"models:/{name}/{version}")
    return version


def _print_registered(name: str):
    def show(metrics: dict[str, float], version: str) -> None:
        _print_metrics(metrics)
        console.print(f"registered {name} version {version}")
    return show


def _print_metrics(metrics: dict[str, float]) -> None:
    table = Table("metric", "value")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}")
    console.print(table)


def register_cmd(
    probe_run: Annotated[str, typer.Option(help="Run id that logged the model (probe step).")],
    name: NameOpt = DEFAULT_MODEL_NAME,
    workdir: WorkdirOpt = Path("work"),
) -> str:
    """Register the model logged by a probe run as a new version, tagged with its metrics."""
    version = steps.register_run(probe_run, name, workdir)
    console.print(f"registered {name} version {version}")
    return version


def promote_cmd(
    version: Annotated[int, typer.Option(min=1, help="Version number to promote.")],
    name: NameOpt = DEFAULT_MODEL_NAME,
    alias: AliasOpt = DEFAULT_ALIAS,
    eval_data: EvalDataOpt = None,
    tolerance: Annotated[float, typer.Option(help="Allowed drop in precision/recall.")] = 0.0,
    workdir: WorkdirOpt = Path("work"),
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
) -> None:
    """Move an alias to a version if it is not worse than the holder on the gate set."""
    tracking.configure_tracking(workdir, must_exist=True)
    datasets = read_gate(eval_data, read_options(energy, wavelength, radial_unit))
    try:
        result = promotion.promote(name, str(version), alias, datasets, tolerance)
    except fingerprint.TrainingRunInTest as err:
        console.print(f"[red]refused:[/] {err}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    except promotion.PromotionRefused as err:
        console.print(f"[red]refused:[/red] {err}")
        raise typer.Exit(1) from None
    c = result["candidate"]
    console.print(f"{name}@{alias} -> version {version} (precision {c['precision']:.4f}, "
                  f"recall {c['recall']:.4f} on gate set {result['eval_set']})")


def pipeline_cmd(
    data: DataOpt = None,
    tiled_uri: TiledUriOpt = None,
    api_key: ApiKeyOpt = None,
    run: RunOpt = None,
    query: QueryOpt = None,
    method: MethodOpt = Method(DEFAULT_METHOD),
    corpus: CorpusOpt = "auto",
    epochs: EpochsOpt = None,
    preset: PresetOpt = TrainPreset.quick,
    device: DeviceOpt = "auto",
    label_fraction: LabelFractionOpt = None,
    holdout: HoldoutOpt = 0.0,
    seed: SeedOpt = 0,
    name: NameOpt = DEFAULT_MODEL_NAME,
    alias: AliasOpt = DEFAULT_ALIAS,
    eval_data: EvalDataOpt = None,
    workdir: WorkdirOpt = Path("work"),
    labels: LabelsOpt = None,
    before_below: BeforeBelowOpt = None,
    after_above: AfterAboveOpt = None,
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
    layout: LayoutOpt = None,
) -> None:
    """fit (corpus network, probe or network on the labels; SSL methods pretrain first) ->
    register -> promote, in one tracked run."""
    read = read_options(energy, wavelength, radial_unit)
    training = load_data(data, tiled_uri, api_key, run, query, read,
                         label_spec(labels, before_below, after_above), layout)
    gate = read_gate(eval_data, read)
    try:
        res = _pipeline(training, method, corpus, epochs, preset, device, label_fraction,
                        holdout, seed, name, alias, gate, workdir)
    except fingerprint.TrainingRunInTest as err:
        console.print(f"[red]refused:[/] {err}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    if res.promoted:
        console.print(f"{name}@{alias} -> version {res.version} "
                      f"(gate precision {res.gate['candidate']['precision']:.4f})")
    else:
        console.print(f"[yellow]kept the current {alias}:[/yellow] {res.refused}")


def _pipeline(training, method, corpus, epochs, preset, device, label_fraction, holdout, seed,
              name, alias, gate, workdir):
    return steps.run_pipeline(
        training, str(method),
        pretrain_config=(_config(method, epochs, seed, device, preset)
                         if method in SSL_METHODS else None),
        label_fraction=label_fraction, holdout=holdout, seed=seed, corpus=corpus, name=name,
        alias=alias, eval_datasets=gate, workdir=workdir,
        on_registered=_print_registered(name))
