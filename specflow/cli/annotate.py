"""CLI commands of the annotate stage: annotate, watch, live, suggest-labels."""

from __future__ import annotations

import faulthandler
import json
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from specflow.cli.identify import ElementsOpt, load_identifier
from specflow.cli.lazy import load
from specflow.cli.options import (
    DEFAULT_MODEL_URI,
    ApiKeyOpt,
    DataOpt,
    EnergyOpt,
    JsonOpt,
    ModelUriOpt,
    QueryOpt,
    RadialUnitOpt,
    RunOpt,
    TiledServerOpt,
    TimeoutOpt,
    WavelengthOpt,
    WorkdirOpt,
    read_options,
)
from specflow.cli.tiled import connect, parse_query

analyzer = load("specflow.annotate.analyzer")
distributed = load("specflow.annotate.distributed")
live = load("specflow.annotate.live")
model_loader = load("specflow.annotate.model")
remote = load("specflow.annotate.remote")
retry = load("specflow.annotate.retry")
suggest = load("specflow.annotate.suggest")
watching = load("specflow.annotate.watch")
sources = load("specflow.data.sources")
export = load("specflow.annotate.export")
tracking = load("specflow.registry.tracking")


def _results_table(results: list) -> Table:
    table = Table("run", "status", "node", "curves", "s", "reason")
    colour = {"written": "green", "skipped": "dim", "failed": "red"}
    for r in results:
        table.add_row(r.uid[:8], f"[{colour[r.status]}]{r.status}[/]", r.node or "",
                      str(r.n_curves), f"{r.seconds:.2f}", r.reason[:80])
    return table


class StopRequested(Exception):
    """Ctrl-C during a batch: raised between runs, once the run in flight has finished."""


@contextmanager
def stop_between_runs(console: Console) -> Iterator[list[bool]]:
    """While in the block, a first Ctrl-C asks to stop after the run in flight (the flag
    in the yielded list), a second one stops at once; the previous handler is restored."""
    asked = [False]

    def handler(signum: int, frame: object) -> None:
        if asked[0]:
            raise KeyboardInterrupt
        asked[0] = True
        console.print("[yellow]stopping after the run in flight (Ctrl-C again: now)[/]")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield asked
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def stacks_on_sigusr1() -> Iterator[None]:
    """While in the block, SIGUSR1 prints every thread's stack to the process's stderr."""
    faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    try:
        yield
    finally:
        faulthandler.unregister(signal.SIGUSR1)


def annotate_cmd(
    tiled_uri: TiledServerOpt,
    api_key: ApiKeyOpt = None,
    run: RunOpt = None,
    query: QueryOpt = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every finished run")] = False,
    model: ModelUriOpt = DEFAULT_MODEL_URI,
    force: Annotated[bool, typer.Option(
        "--force", help="Annotate again: writes the next revision beside a complete node "
        "(nothing is deleted)")] = False,
    publish: Annotated[bool, typer.Option(
        "--publish/--no-publish", help="Copy the summary into the run's metadata (what "
        "'specflow phases' and catalog searches see); --no-publish only writes the node")
    ] = True,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Annotate on a local Dask cluster of this many processes "
        "(1: in this process)")] = 1,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Annotate on the Dask cluster at this address, e.g. "
        "tcp://host:8786 (its workers need specflow and must reach Tiled and MLflow; "
        "--workers is then the cluster's business)")
    ] = None,
    identifier: Annotated[str | None, typer.Option(
        "--identifier", help="Also name each segment's phase with this trained identifier "
        "(.pt from 'specflow train-identifier', or models:/specflow-identify@champion)")
    ] = None,
    library: Annotated[Path | None, typer.Option(
        "--library", help="Also name each segment's phase by cosine match to this "
        "reference library (.nc)")] = None,
    elements: ElementsOpt = None,
    batch: Annotated[str | None, typer.Option(
        "--batch", help="Resume the stopped batch of this name (printed when a --force batch "
        "stops): the runs it finished are not forced again")] = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Label runs in Tiled with the registered phase model and write the labels back."""
    console = Console()
    if not (run or query or all_runs):
        raise typer.BadParameter("give --run UID, --query KEY=VALUE or --all")
    if elements and not (identifier or library):
        raise typer.BadParameter("--elements filters identification: give --identifier or "
                                 "--library too", param_hint="--elements")
    client = connect(tiled_uri, api_key)
    tracking.configure_tracking(workdir, must_exist=True)
    loaded = model_loader.load_model(model)
    console.print(f"model {loaded.uri} ({model}, run {loaded.run_id})")
    named = (load_identifier(identifier, library, workdir, elements)
             if identifier or library else None)
    batch = batch or (uuid.uuid4().hex if force else None)
    done: list = []
    try:
        uids = analyzer.select_runs(client, run, parse_query(query), all_runs)
        on_dask = bool(uids and (scheduler or workers > 1))
        # a Dask batch has many runs in flight: Ctrl-C stops it at once
        between = nullcontext([False]) if on_dask else stop_between_runs(console)
        with Progress(TextColumn("annotating"), BarColumn(), MofNCompleteColumn(),
                      console=console) as progress, between as asked:
            task = progress.add_task("runs", total=len(uids))

            def advance(result) -> None:
                progress.advance(task)
                done.append(result)
                if asked[0]:
                    raise StopRequested

            if on_dask:
                results = distributed.annotate_on_dask(
                    tiled_uri, api_key, uids, loaded, scheduler=scheduler, workers=workers,
                    force=force, publish=publish, identifier=named, on_result=advance,
                    batch=batch)
            else:
                results = analyzer.annotate(client, uids, model=loaded, force=force,
                                            publish=publish, on_result=advance,
                                            identifier=named, batch=batch)
    except retry.TiledUnreachable as exc:
        console.print(_results_table(exc.results))
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except StopRequested:
        console.print(_results_table(done))
        again = f" with --batch {batch}" if force else ""
        console.print(f"interrupted after {len(done)} of {len(uids)} runs (each one shown is "
                      f"complete); run the same command again{again} to resume",
                      soft_wrap=True)
        raise typer.Exit(130) from None
    except retry.AnnotationError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(_results_table(results))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def watch_cmd(
    tiled_uri: TiledServerOpt,
    api_key: ApiKeyOpt = None,
    model: ModelUriOpt = DEFAULT_MODEL_URI,
    poll: Annotated[bool, typer.Option("--poll", help="Poll instead of subscribing")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Poll interval (s)")] = 2.0,
    registry_interval: Annotated[float, typer.Option(
        "--registry-interval", help="How often to check the model alias (s)")] = 30.0,
    max_runs: Annotated[int | None, typer.Option(
        "--max-runs", min=1, help="Stop after this many annotation results (default: never)")
    ] = None,
    timeout: TimeoutOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Follow the catalog: annotate runs as they finish, re-annotate when the alias moves.

    Runs until Ctrl+C, or until --max-runs results or --timeout seconds (e.g. from cron);
    exits 1 if any run failed. A watcher that seems stuck prints every thread's stack on
    SIGUSR1 (kill -USR1 PID) and goes on."""
    console = Console()
    client = connect(tiled_uri, api_key)
    tracking.configure_tracking(workdir, must_exist=True)
    watcher = watching.Watcher(client, model, mode="poll" if poll else "auto",
                               poll_interval=interval, registry_interval=registry_interval,
                               console=console)
    watcher.model = model_loader.load_model(model)
    console.print(f"watching {tiled_uri} with {model} (version {watcher.model.version}; "
                  "Ctrl+C to stop)")
    try:
        with stacks_on_sigusr1():
            results = watcher.run(max_events=max_runs, timeout=timeout)
    except KeyboardInterrupt:
        watcher.stop()
        results = watcher.results
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def live_cmd(
    zmq: Annotated[str | None, typer.Option(
        "--zmq", help="A bluesky 0MQ proxy's out address, host:port (bluesky-0MQ-proxy "
        "5577 5578 -> localhost:5578)")] = None,
    kafka: Annotated[str | None, typer.Option(
        "--kafka", help="Kafka bootstrap servers, host:9092 (needs specflow[kafka])")] = None,
    beamline: Annotated[str | None, typer.Option(
        "--beamline", help="With --kafka: topic <beamline>.bluesky.runengine.documents")
    ] = None,
    model: ModelUriOpt = DEFAULT_MODEL_URI,
    stream: Annotated[str, typer.Option("--stream", help="Event stream with the curves")
                      ] = "primary",
    max_runs: Annotated[int | None, typer.Option(
        "--max-runs", min=1, help="Stop after this many runs have ended (default: never)")
    ] = None,
    timeout: TimeoutOpt = None,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Label curves live as a RunEngine in another process publishes them (0MQ or Kafka).

    One line per curve: pressure, phase, probability, and an out-of-distribution flag.
    Labels are per curve and provisional; annotating the finished run (watch/annotate)
    decodes them along the whole run and stores them."""
    if (zmq is None) == (kafka is None):
        raise typer.BadParameter("give one source: --zmq HOST:PORT or --kafka HOST:PORT")
    if kafka is not None and not beamline:
        raise typer.BadParameter("--kafka needs --beamline (the topic's prefix)",
                                 param_hint="--beamline")
    console = Console()
    tracking.configure_tracking(workdir, must_exist=True)
    loaded = model_loader.load_model(model)
    monitor = live.LivePhaseMonitor(loaded, stream=stream, console=console)
    source = (f"0MQ proxy {zmq}" if zmq
              else f"Kafka {kafka} topic {remote.kafka_topic(beamline)}")
    console.print(f"labelling curves from {source} with {loaded.uri} (Ctrl+C to stop)")
    if zmq is not None:
        runs = remote.follow_zmq(zmq, monitor, max_runs=max_runs, timeout=timeout)
    else:
        runs = remote.follow_kafka(kafka, beamline, monitor, max_runs=max_runs,
                                   timeout=timeout)
    curves = sum(len(v) for v in monitor.predictions.values())
    console.print(f"{runs} run(s) ended; {curves} curve(s) labelled")


def suggest_cmd(
    data: DataOpt,
    model: ModelUriOpt = DEFAULT_MODEL_URI,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Curves to suggest")] = 10,
    include_labelled: Annotated[bool, typer.Option(
        "--include-labelled", help="Also suggest curves whose 'label' is already ≥ 0")] = False,
    json_out: JsonOpt = None,
    workdir: WorkdirOpt = Path("work"),
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
) -> None:
    """Curves to label next: where the registered model is least sure of the phase."""
    if not data:
        raise typer.BadParameter("give the runs to look at", param_hint="--data")
    runs = sources.read_runs(data, **read_options(energy, wavelength, radial_unit))
    tracking.configure_tracking(workdir, must_exist=True)
    loaded = model_loader.load_model(model)
    suggestions = suggest.suggest_labels(loaded, runs, count, include_labelled)
    table = Table("file", "curve", "pressure (GPa)", "predicted", "p0 / p1 / p2", "margin",
                  title=f"curves to label next ({loaded.uri})")
    for s in suggestions:
        table.add_row(s.run, str(s.curve), f"{s.pressure:.2f}", str(s.predicted),
                      " / ".join(f"{v:.2f}" for v in s.probabilities), f"{s.margin:.3f}")
    Console().print(table)
    if json_out is not None:
        rows = [{"file": s.run, **{k: v for k, v in s.as_dict().items() if k != "run"}}
                for s in suggestions]
        json_out.write_text(json.dumps({"model": loaded.uri, "suggestions": rows}, indent=2))


def _summary_rows(frame, title: str) -> Table:
    table = Table("run", "curves", "onset (GPa)", "end (GPa)", "unlike training", title=title)

    def gpa(value, err) -> str:
        return "—" if value is None or value != value else f"{value:.2f} ± {err:.2f}"

    for row in frame.itertuples():
        table.add_row(row.run, str(row.curves), gpa(row.onset_gpa, row.onset_err_gpa),
                      gpa(row.end_gpa, row.end_err_gpa), "yes" if row.unlike_training else "no")
    return table


CurvesOpt = Annotated[str | None, typer.Option(
    "--curves", help="Also write each curve, its pressure and phase in the header: xy "
    "(2θ, Dioptas / GSAS-II) or fxye (GSAS-II).")]


def _check_curves(curves: str | None) -> None:
    if curves not in (None, "xy", "fxye"):
        raise typer.BadParameter(f"{curves!r}: use xy or fxye", param_hint="--curves")


def label_cmd(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    model: ModelUriOpt = DEFAULT_MODEL_URI,
    curves: CurvesOpt = None,
    workdir: WorkdirOpt = Path("work"),
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
) -> None:
    """Label runs from files with the registered model; write per-curve phases, transition
    pressures and curves to take away.

    For each run: OUT/RUN/labels.csv (a row per curve), OUT/RUN/summary.json (onset and end
    pressures with uncertainty, the model), OUT/RUN/RUN.nxs (NeXus NXazint1d: curves and
    results), with --curves the curves themselves; and OUT/summary.csv, a row per run."""
    if not data:
        raise typer.BadParameter("give the runs to label", param_hint="--data")
    _check_curves(curves)
    runs = sources.read_runs(data, **read_options(energy, wavelength, radial_unit))
    tracking.configure_tracking(workdir, must_exist=True)
    loaded = model_loader.load_model(model)
    frame = export.export_labels(loaded, runs, out, curves)
    Console().print(_summary_rows(frame, f"phases by {loaded.uri} → {out}"))


def export_cmd(
    tiled_uri: TiledServerOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    api_key: ApiKeyOpt = None,
    run: RunOpt = None,
    query: QueryOpt = None,
    all_runs: Annotated[bool, typer.Option(
        "--all", help="Every finished run that has labels (runs without are skipped)")] = False,
    key: Annotated[str | None, typer.Option(
        "--key", help="Annotation node to export (default: each run's published one, "
        "specflow.latest)")] = None,
    curves: CurvesOpt = None,
) -> None:
    """Write the labels already in Tiled to take away: per-curve phases, transition
    pressures, NeXus, curves.

    The same files as 'specflow label', for each run (NAME: its run_name and the start of its
    uid): OUT/NAME/labels.csv, OUT/NAME/summary.json, OUT/NAME/NAME.nxs, with --curves the
    curves; and OUT/summary.csv. No model is loaded: the labels are those 'specflow annotate'
    wrote."""
    if not (run or query or all_runs):
        raise typer.BadParameter("give --run UID, --query KEY=VALUE or --all")
    _check_curves(curves)
    client = connect(tiled_uri, api_key)
    uids = analyzer.select_runs(client, run, parse_query(query), all_runs)
    frame = export.export_annotations(client, uids, out, curves, key,
                                      skip_unlabelled=not run)
    console = Console()
    console.print(_summary_rows(frame, f"phases from {tiled_uri} → {out}"))
    if len(frame) < len(uids):
        console.print(f"{len(uids) - len(frame)} of {len(uids)} runs have no labels yet: "
                      "'specflow annotate' labels them")
