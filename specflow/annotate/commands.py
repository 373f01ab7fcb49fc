"""CLI commands of the annotate stage: annotate, watch, phases, suggest-labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

TiledUri = Annotated[str, typer.Option(
    "--tiled-uri", envvar="TILED_URI", help="Tiled server, e.g. http://127.0.0.1:8000")]
ApiKey = Annotated[str | None, typer.Option(
    "--api-key", envvar="TILED_API_KEY", help="Tiled API key (writing needs it)")]
ModelUri = Annotated[str, typer.Option(
    "--model", help="Registered model: models:/<name>@<alias> or models:/<name>/<version>")]
Workdir = Annotated[Path, typer.Option(
    "--workdir", help="Embedded MLflow store location when MLFLOW_TRACKING_URI is unset")]


def parse_query(items: list[str] | None) -> dict[str, Any]:
    """``--query KEY=VALUE`` options as a dict (see :func:`parse_key_values`)."""
    from .query import parse_key_values

    try:
        return parse_key_values(items)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def connect(tiled_uri: str, api_key: str | None) -> Any:
    """A Tiled client, or a clear error about the URI, the server or the key."""
    from tiled.client import from_uri

    from specflow.ingest.catalog import require_reachable

    from .retry import auth_problem

    require_reachable(tiled_uri)  # ConnectionError: one line from the CLI's error boundary
    try:
        return from_uri(tiled_uri, api_key=api_key)
    except Exception as exc:
        problem = auth_problem(exc)
        if problem is None:
            raise
        Console(stderr=True).print(f"[red]error:[/] {problem} ({exc})", soft_wrap=True)
        raise typer.Exit(2) from exc


def _results_table(results: list) -> Table:
    table = Table("run", "status", "node", "curves", "s", "reason")
    colour = {"written": "green", "skipped": "dim", "failed": "red"}
    for r in results:
        table.add_row(r.uid[:8], f"[{colour[r.status]}]{r.status}[/]", r.node or "",
                      str(r.n_curves), f"{r.seconds:.2f}", r.reason[:80])
    return table


def annotate_cmd(
    tiled_uri: TiledUri,
    api_key: ApiKey = None,
    run: Annotated[list[str] | None, typer.Option("--run", help="Run uid (repeatable)")] = None,
    query: Annotated[list[str] | None, typer.Option(
        "--query", help="KEY=VALUE on run metadata, e.g. start.sample=Fe (repeatable)")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every finished run")] = False,
    model: ModelUri = "models:/specflow-phase@champion",
    force: Annotated[bool, typer.Option(
        "--force", help="Annotate again: writes the next revision beside a complete node "
        "(nothing is deleted)")] = False,
    publish: Annotated[bool, typer.Option(
        "--publish/--no-publish", help="Copy the summary into the run's metadata (what "
        "'specflow phases' and catalog searches see); --no-publish only writes the node")
    ] = True,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Runs at once")] = 1,
    workdir: Workdir = Path("work"),
) -> None:
    """Label runs in Tiled with the registered phase model and write the labels back."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from specflow.registry.tracking import configure_tracking

    from .analyzer import annotate, select_runs
    from .model import load_model
    from .retry import AnnotationError, TiledUnreachable

    console = Console()
    if not (run or query or all_runs):
        raise typer.BadParameter("give --run UID, --query KEY=VALUE or --all")
    client = connect(tiled_uri, api_key)
    configure_tracking(workdir, must_exist=True)
    loaded = load_model(model)
    console.print(f"model {loaded.uri} ({model}, run {loaded.run_id})")
    try:
        uids = select_runs(client, run, parse_query(query), all_runs)
        with Progress(TextColumn("annotating"), BarColumn(), MofNCompleteColumn(),
                      console=console) as progress:
            task = progress.add_task("runs", total=len(uids))
            results = annotate(client, uids, model=loaded, force=force, publish=publish,
                               workers=workers, on_result=lambda r: progress.advance(task))
    except TiledUnreachable as exc:
        console.print(_results_table(exc.results))
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except AnnotationError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(_results_table(results))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def watch_cmd(
    tiled_uri: TiledUri,
    api_key: ApiKey = None,
    model: ModelUri = "models:/specflow-phase@champion",
    poll: Annotated[bool, typer.Option("--poll", help="Poll instead of subscribing")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Poll interval (s)")] = 2.0,
    registry_interval: Annotated[float, typer.Option(
        "--registry-interval", help="How often to check the model alias (s)")] = 30.0,
    workdir: Workdir = Path("work"),
) -> None:
    """Follow the catalog: annotate runs as they finish, re-annotate when the alias moves."""
    from specflow.registry.tracking import configure_tracking

    from .watch import Watcher

    console = Console()
    client = connect(tiled_uri, api_key)
    configure_tracking(workdir, must_exist=True)
    watcher = Watcher(client, model, mode="poll" if poll else "auto", poll_interval=interval,
                      registry_interval=registry_interval, console=console)
    console.print(f"watching {tiled_uri} with {model} (Ctrl+C to stop)")
    try:
        watcher.run()
    except KeyboardInterrupt:
        watcher.stop()


def _pm(value: float | None, unc: float | None) -> str:
    return "" if value is None else f"{value:.2f} ± {unc or 0:.2f}"


def phases_cmd(
    tiled_uri: TiledUri,
    api_key: ApiKey = None,
    onset_between: Annotated[tuple[float, float] | None, typer.Option(
        "--onset-between", help="Onset pressure range (GPa): LOW HIGH")] = None,
    phase: Annotated[int | None, typer.Option("--phase", help="Phase present: 0, 1 or 2")] = None,
    sample: Annotated[str | None, typer.Option("--sample", help="start.sample")] = None,
) -> None:
    """List annotated runs with their phases and transition pressures."""
    from .query import find_phases

    console = Console()
    client = connect(tiled_uri, api_key)
    records = find_phases(client, onset_between=onset_between, phase=phase, sample=sample)
    table = Table("run", "sample", "phases", "onset (GPa)", "end (GPa)", "model version")
    for r in records:
        table.add_row(r.uid, r.sample, ",".join(map(str, r.phases)),
                      _pm(r.onset_pressure, r.onset_uncertainty),
                      _pm(r.end_pressure, r.end_uncertainty), str(r.model_version))
    console.print(table)


def suggest_cmd(
    data: Annotated[list[Path], typer.Option("--data", help="Spectra file (repeatable).")],
    model: ModelUri = "models:/specflow-phase@champion",
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Curves to suggest")] = 10,
    include_labelled: Annotated[bool, typer.Option(
        "--include-labelled", help="Also suggest curves whose 'label' is already ≥ 0")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write as JSON")] = None,
    workdir: Workdir = Path("work"),
) -> None:
    """Curves to label next: where the registered model is least sure of the phase."""
    import json

    import numpy as np

    from specflow.data.io import read_spectra
    from specflow.learn.data import wavelength_of
    from specflow.learn.probe import margins, smallest_margin
    from specflow.registry.tracking import configure_tracking

    from .model import load_model

    missing = [str(p) for p in data if not p.exists()]
    if missing:
        raise typer.BadParameter(f"no such file(s): {', '.join(missing)}", param_hint="--data")
    configure_tracking(workdir, must_exist=True)
    loaded = load_model(model)
    rows, probs, known = [], [], []
    for path in data:
        ds = read_spectra(path)
        out = loaded.predict(ds["intensity"].values, ds["two_theta"].values,
                             ds["pressure"].values, wavelength_of(ds))
        probs.append(out[["p0", "p1", "p2"]].to_numpy())
        label = ds["label"].values if "label" in ds else np.full(ds.sizes["curve"], -1)
        known.append(label >= 0)
        rows += [{"file": path.name, "curve": i, "pressure": float(ds["pressure"].values[i]),
                  "predicted": int(out["label"].iloc[i])} for i in range(ds.sizes["curve"])]
    p = np.concatenate(probs)
    skip = None if include_labelled else np.flatnonzero(np.concatenate(known))
    picked = smallest_margin(p, skip, count)
    margin = margins(p)
    suggestions = [{**rows[i], "margin": float(margin[i]),
                    "probabilities": [round(float(v), 4) for v in p[i]]} for i in picked]
    table = Table("file", "curve", "pressure (GPa)", "predicted", "p0 / p1 / p2", "margin",
                  title=f"curves to label next ({loaded.uri})")
    for s in suggestions:
        table.add_row(s["file"], str(s["curve"]), f"{s['pressure']:.2f}", str(s["predicted"]),
                      " / ".join(f"{v:.2f}" for v in s["probabilities"]), f"{s['margin']:.3f}")
    Console().print(table)
    if json_out is not None:
        json_out.write_text(json.dumps({"model": loaded.uri, "suggestions": suggestions},
                                       indent=2))
