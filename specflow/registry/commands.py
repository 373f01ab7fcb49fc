"""CLI steps of the model lifecycle: pretrain, probe, register, promote, pipeline.

Each logs into ``MLFLOW_TRACKING_URI`` (or the embedded SQLite store under ``--workdir``)
and attaches to the run that ``mlflow run`` created, so the same commands serve the
MLproject entry points and interactive use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from specflow.learn.names import DEFAULT_METHOD, SSL_METHODS
from specflow.options import Method, SSLMethod, TrainPreset, fraction

console = Console()

DataOpt = Annotated[list[str] | None, typer.Option(
    "--data", help="Spectra file (.nc/.csv/...) or a quoted glob like 'runs/*.nc'; "
    "repeatable. Paths are taken as given (spaces, commas and brackets are fine).")]
TiledUriOpt = Annotated[str | None, typer.Option(
    "--tiled-uri", envvar="TILED_URI", help="Read runs from this Tiled server instead.")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="TILED_API_KEY",
                                               help="Tiled API key.")]
RunsOpt = Annotated[list[str] | None, typer.Option("--run", help="Tiled run uid (repeatable).")]
QueryOpt = Annotated[list[str] | None, typer.Option(
    "--query", help="Tiled metadata query KEY=VALUE, e.g. start.sample=Fe (repeatable).")]
WorkdirOpt = Annotated[Path, typer.Option(
    "--workdir", help="Embedded MLflow store location when MLFLOW_TRACKING_URI is unset.")]
NameOpt = Annotated[str, typer.Option("--name", help="Registered model name.")]
MethodOpt = Annotated[SSLMethod, typer.Option(help="rrmoco, rr, moco or selftime.")]
AnyMethodOpt = Annotated[Method, typer.Option(
    help="rrmoco, rr, moco, selftime (pretrained on the runs), untrained (a seeded random "
    "encoder) or raw (the preprocessed curves) under a linear probe; or a supervised model "
    "trained end to end on the labels: cnn, lstm, transformer, fnn, resnet, convsc, convsct, "
    "binned.")]
EpochsOpt = Annotated[int | None, typer.Option(min=1, help="Epochs (default from --preset).")]
PresetOpt = Annotated[TrainPreset, typer.Option(help="quick (CPU minutes) or paper (GPU).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
SeedOpt = Annotated[int, typer.Option(help="Random seed.")]
FractionOpt = Annotated[float | None, typer.Option(
    callback=fraction, help="Reveal only this fraction of each run's labelled curves "
    "(0 < f ≤ 1; class-blind, evenly spaced) and score on the rest: for fully labelled "
    "simulated runs. Default: every given label trains the probe.")]
HoldoutOpt = Annotated[float, typer.Option(
    min=0.0, max=0.9, help="Keep this fraction of the given labels out of training to report "
    "probe metrics (default 0: every label trains the model you deploy).")]
EvalOpt = Annotated[list[Path] | None, typer.Option(
    "--eval-data", help="Labelled evaluation files for the gate (default: the fixed "
    "simulated Fe+FeO gate set).")]


def expand_paths(values: list[str] | None) -> list[Path]:
    """``--data`` values as paths: an existing path as given, else a glob pattern (sorted
    matches). A value that is neither is a usage error naming it."""
    import glob

    out: list[Path] = []
    for value in values or []:
        if Path(value).expanduser().exists():
            out.append(Path(value).expanduser())
            continue
        matches = sorted(glob.glob(str(Path(value).expanduser())))
        if not matches:
            raise typer.BadParameter(f"no such file and no file matches: {value!r}",
                                     param_hint="--data")
        out += [Path(m) for m in matches]
    return out


def load_data(data, tiled_uri, api_key, runs, query):
    """Files or Tiled runs -> TrainingData (exactly one source)."""
    from specflow.registry.steps import load_files, load_tiled

    if tiled_uri:
        return load_tiled(tiled_uri, api_key, list(runs or []), query or [])
    files = expand_paths(data)
    if not files:
        raise typer.BadParameter("give --data files or --tiled-uri with --run/--query")
    return load_files(files)


def _config(method: str, epochs: int | None, seed: int, device: str, preset: str):
    from specflow.learn.evaluate import default_config

    return default_config(method, epochs, seed, device, preset)


def pretrain_cmd(
    data: DataOpt = None,
    tiled_uri: TiledUriOpt = None,
    api_key: ApiKeyOpt = None,
    run: RunsOpt = None,
    query: QueryOpt = None,
    method: MethodOpt = SSLMethod.rrmoco,
    epochs: EpochsOpt = None,
    preset: PresetOpt = TrainPreset.quick,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    workdir: WorkdirOpt = Path("work"),
) -> str:
    """Self-supervised pretraining on unlabelled curves, tracked in MLflow; prints the run id."""
    from specflow.registry.steps import log_provenance, pretrain_step, set_step_tags, start_run

    training = load_data(data, tiled_uri, api_key, run, query)
    with start_run(workdir) as active:
        log_provenance(training)
        set_step_tags(step="pretrain", method=method)
        pretrain_step(training, _config(method, epochs, seed, device, preset))
        console.print(f"pretraining run {active.info.run_id}")
        return active.info.run_id


def probe_cmd(
    pretrain_run: Annotated[str, typer.Option(help="Run id of the pretraining run.")],
    data: DataOpt = None,
    tiled_uri: TiledUriOpt = None,
    api_key: ApiKeyOpt = None,
    run: RunsOpt = None,
    query: QueryOpt = None,
    label_fraction: FractionOpt = None,
    holdout: HoldoutOpt = 0.0,
    seed: SeedOpt = 0,
    workdir: WorkdirOpt = Path("work"),
) -> str:
    """Linear probe on a pretrained encoder with few labels; logs the pyfunc model."""
    from specflow.registry.steps import (
        load_pretrained,
        log_provenance,
        probe_step,
        set_step_tags,
        start_run,
    )

    training = load_data(data, tiled_uri, api_key, run, query)
    with start_run(workdir) as active:
        log_provenance(training)
        set_step_tags(step="probe", pretrain_run=pretrain_run)
        out = probe_step(load_pretrained(pretrain_run), training, label_fraction, seed,
                         holdout=holdout)
        _print_metrics(out["metrics"])
        console.print(f"probe run {active.info.run_id}, model {out['model_uri']}")
        return active.info.run_id


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
    name: NameOpt = "specflow-phase",
    workdir: WorkdirOpt = Path("work"),
) -> str:
    """Register the model logged by a probe run as a new version, tagged with its metrics."""
    from mlflow.tracking import MlflowClient

    from specflow.registry.promotion import register, registration_tags
    from specflow.registry.tracking import configure_tracking

    configure_tracking(workdir, must_exist=True)
    run = MlflowClient().get_run(probe_run)
    model_uri = run.data.tags.get("specflow.model_uri")
    if not model_uri:
        raise typer.BadParameter(f"run {probe_run} logged no specflow model")
    version = register(model_uri, name, registration_tags(probe_run))
    console.print(f"registered {name} version {version.version}")
    return str(version.version)


def promote_cmd(
    version: Annotated[int, typer.Option(min=1, help="Version number to promote.")],
    name: NameOpt = "specflow-phase",
    alias: Annotated[str, typer.Option(help="Alias to move (champion, challenger).")] = "champion",
    eval_data: EvalOpt = None,
    tolerance: Annotated[float, typer.Option(help="Allowed drop in precision/recall.")] = 0.0,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Move an alias to a version if it is not worse than the holder on the gate set."""
    from specflow.data.io import read_spectra
    from specflow.registry.promotion import PromotionRefused, promote
    from specflow.registry.tracking import configure_tracking

    configure_tracking(workdir, must_exist=True)
    datasets = [read_spectra(p) for p in eval_data] if eval_data else None
    try:
        result = promote(name, str(version), alias, datasets, tolerance)
    except PromotionRefused as err:
        console.print(f"[red]refused:[/red] {err}")
        raise typer.Exit(1) from None
    c = result["candidate"]
    console.print(f"{name}@{alias} -> version {version} (precision {c['precision']:.4f}, "
                  f"recall {c['recall']:.4f} on gate set {result['eval_set']})")


def pipeline_cmd(
    data: DataOpt = None,
    tiled_uri: TiledUriOpt = None,
    api_key: ApiKeyOpt = None,
    run: RunsOpt = None,
    query: QueryOpt = None,
    method: AnyMethodOpt = Method(DEFAULT_METHOD),
    epochs: EpochsOpt = None,
    preset: PresetOpt = TrainPreset.quick,
    device: DeviceOpt = "auto",
    label_fraction: FractionOpt = None,
    holdout: HoldoutOpt = 0.0,
    seed: SeedOpt = 0,
    name: NameOpt = "specflow-phase",
    alias: Annotated[str, typer.Option(help="Alias to promote to.")] = "champion",
    eval_data: EvalOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """pretrain -> probe (or train a supervised model) -> register -> promote, in one run."""
    from specflow.data.io import read_spectra
    from specflow.registry.steps import run_pipeline

    training = load_data(data, tiled_uri, api_key, run, query)
    res = run_pipeline(
        training, method,
        pretrain_config=(_config(method, epochs, seed, device, preset)
                         if method in SSL_METHODS else None),
        label_fraction=label_fraction, holdout=holdout, seed=seed, name=name, alias=alias,
        eval_datasets=[read_spectra(p) for p in eval_data] if eval_data else None,
        workdir=workdir, on_registered=_print_registered(name))
    if res.promoted:
        console.print(f"{name}@{alias} -> version {res.version} "
                      f"(gate precision {res.gate['candidate']['precision']:.4f})")
    else:
        console.print(f"[yellow]kept the current {alias}:[/yellow] {res.refused}")
