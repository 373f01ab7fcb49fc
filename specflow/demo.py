"""The embedded end-to-end demo: Tiled + MLflow in a work dir, nothing to install by hand.

simulated beamline → RunEngine → TiledWriter → fit the default model (the network trained on
the Fe + FeO corpus, shipped with specflow, recalibrated on a few labels; MLflow) → register →
promote → annotate every run in Tiled → query phases → table and figures.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from tiled.client import from_uri

from specflow.annotate import annotate, find_phases, read_labels
from specflow.annotate.live import LivePhaseMonitor
from specflow.annotate.model import load_model
from specflow.ingest import run_to_dataset
from specflow.ingest.frames import INTEGRATED_STREAM, uri_path
from specflow.learn.fitting import default_config
from specflow.learn.names import DEFAULT_METHOD, SSL_METHODS
from specflow.plots import save_contour
from specflow.registry.steps import load_tiled, run_pipeline
from specflow.registry.tracking import (
    DEFAULT_ALIAS,
    DEFAULT_MODEL_NAME,
    configure_tracking,
    quiet_mlflow,
)
from specflow.servers.tiled import tiled_server
from specflow.simulator.area import DetectorGeometry
from specflow.simulator.runs import record_compressions, record_frame_compressions

MODEL_NAME = DEFAULT_MODEL_NAME
MARKER = ".specflow-demo"  # written into a work dir the demo created
OWN_ENTRIES = ("tiled", "mlflow", "figures")  # all the demo writes there, besides MARKER


class WorkdirNotOurs(RuntimeError):
    """The work dir holds something the demo did not create: it will not touch it."""


STORES = ("mlflow/mlflow.db", "tiled/catalog.db")  # stamped when the demo finishes


def _stamp(workdir: Path) -> dict[str, list[int]]:
    stats = {name: (workdir / name).stat() for name in STORES if (workdir / name).is_file()}
    return {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}


def _changed_since_demo(workdir: Path) -> list[str]:
    """Stores the demo stamped that were written since (e.g. someone's own models)."""
    try:
        stamp = json.loads((workdir / MARKER).read_text()).get("stores") or {}
    except (OSError, ValueError):
        return []  # an unfinished demo's marker: everything in it is the demo's
    now = _stamp(workdir)
    return [name for name, value in stamp.items() if now.get(name, value) != value]


def prepare_workdir(workdir: Path, fresh: bool) -> Path:
    """Create ``workdir`` (with the demo's marker file), or start it afresh.

    Starting afresh removes only what the demo writes (``tiled/``, ``mlflow/``,
    ``figures/``), only from a directory carrying the demo's marker, and only if the stores
    the demo stamped when it finished are unchanged — other commands use the same default
    ``--workdir`` and may have registered models there since. Any other existing directory
    must be empty; otherwise :class:`WorkdirNotOurs` is raised and nothing is removed.
    """
    workdir = workdir.expanduser().resolve()
    if workdir.exists() and not workdir.is_dir():
        raise WorkdirNotOurs(f"--workdir {workdir} is a file, not a directory")
    entries = {p.name for p in workdir.iterdir()} if workdir.exists() else set()
    marked = MARKER in entries
    if entries and not marked:
        raise WorkdirNotOurs(
            f"--workdir {workdir} exists and was not created by the specflow demo (no "
            f"{MARKER} file in it); nothing was removed. Choose a new or empty directory.")
    if fresh and marked:
        changed = _changed_since_demo(workdir)
        if changed:
            raise WorkdirNotOurs(
                f"{', '.join(str(workdir / c) for c in changed)} changed since the demo wrote "
                "it (your own models or runs?); nothing was removed. Use --keep, remove it "
                "yourself, or choose another --workdir.")
        for name in OWN_ENTRIES:
            target = workdir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text(json.dumps({"created_by": "specflow demo", "note": (
        "specflow demo removes only tiled/, mlflow/ and figures/ here when started afresh, "
        "and only while the stores below are as the demo left them")}))
    return workdir


def finish_workdir(workdir: Path) -> None:
    """Stamp the stores the demo wrote, so a later fresh start can tell if others wrote."""
    (workdir / MARKER).write_text(json.dumps({"created_by": "specflow demo",
                                              "stores": _stamp(workdir)}))


@dataclass
class DemoConfig:
    """Sizes of the demo; the defaults finish in a few minutes on 2 CPU cores."""

    workdir: Path = Path("work")
    runs_per_material: int = 2
    curves: int = 300
    method: str = DEFAULT_METHOD  # the accuracy table's best; an SSL method adds pretraining
    epochs: int | None = 10  # SSL methods: a few minutes on 2 CPU cores
    label_fraction: float = 0.03
    seed: int = 0
    device: str = "auto"
    fresh: bool = True
    area_frames: int = 40  # one area-detector run (512×512 frames) labelled live; 0: skip


def learning_step(cfg: DemoConfig) -> str:
    """What step 2 of the demo fits, in words."""
    if cfg.method == DEFAULT_METHOD:
        return "fit (the corpus network, recalibrated on a few labels)"
    if cfg.method in SSL_METHODS:
        epochs = f" ({cfg.epochs} epochs)" if cfg.epochs else ""
        return f"pretrain {cfg.method}{epochs} → probe on a few labels"
    return f"fit {cfg.method} on a few labels"


def run_demo(cfg: DemoConfig, console: Console | None = None) -> dict:
    """Run every stage; returns the per-run results that the table shows."""
    console = console or Console()
    workdir = prepare_workdir(cfg.workdir, cfg.fresh)
    (workdir / "figures").mkdir(parents=True, exist_ok=True)
    with quiet_mlflow():  # the demo reports every step itself
        return _run_demo(cfg, workdir, console)


def _run_demo(cfg: DemoConfig, workdir: Path, console: Console) -> dict:
    t0 = time.perf_counter()
    uri = configure_tracking(workdir)
    console.rule("[bold]specflow demo")
    console.print(f"work dir {workdir}\nMLflow store {uri}")
    with tiled_server(workdir / "tiled") as server:
        console.print(f"Tiled server {server.api_uri}")
        console.rule("1 · ingest: simulated compressions → RunEngine → TiledWriter → Tiled")
        uids: list[str] = []
        writer = from_uri(server.api_uri, api_key=server.api_key)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console) as progress:
            for i, material in enumerate(("Fe", "FeO")):
                task = progress.add_task(f"{material} runs",
                                         total=cfg.runs_per_material * cfg.curves)
                uids += record_compressions(writer, cfg.runs_per_material, cfg.curves,
                                            material, cfg.seed + 100 * i,
                                            on_event=lambda t=task: progress.advance(t))
        console.rule(f"2 · learn: {learning_step(cfg)} → register → promote (MLflow)")
        res = run_pipeline(
            load_tiled(server.api_uri, server.api_key, uids, []), cfg.method,
            pretrain_config=(default_config(cfg.method, cfg.epochs, cfg.seed, cfg.device,
                                            "quick") if cfg.method in SSL_METHODS else None),
            seed=cfg.seed, label_fraction=cfg.label_fraction, name=MODEL_NAME,
            workdir=workdir)
        console.print(f"registered {MODEL_NAME} version {res.version}; "
                      + (f"{MODEL_NAME}@{DEFAULT_ALIAS} -> version {res.version}"
                         if res.promoted else f"{DEFAULT_ALIAS} kept: {res.refused}"))
        champion = MlflowClient().get_model_version_by_alias(MODEL_NAME, DEFAULT_ALIAS)
        console.rule(f"3 · annotate every run with {MODEL_NAME}@{DEFAULT_ALIAS} "
                     f"(version {champion.version})")
        client = from_uri(server.api_uri, api_key=server.api_key)
        with Progress(TextColumn("annotating"), BarColumn(), MofNCompleteColumn(),
                      console=console) as progress:
            task = progress.add_task("runs", total=len(uids))
            annotate(client, uids=uids, model_uri=f"models:/{MODEL_NAME}@{DEFAULT_ALIAS}",
                     on_result=lambda _: progress.advance(task))
        console.rule("4 · query phases through Tiled")
        rows = []
        for record in find_phases(client):
            run = client[record.uid]
            truth = run_to_dataset(run)
            node = read_labels(run, record.node)
            predicted = node["label"].values
            accuracy = float((predicted == truth["label"].values).mean())
            rows.append({**asdict(record), "accuracy": accuracy})
            _figure(truth, node, workdir / "figures" / f"{truth.attrs.get('sample')}_"
                    f"{record.uid[:8]}.png")
        onset_hits = [r.uid for r in find_phases(client, onset_between=(10.0, 15.0))]
        area = _area_detector_run(cfg, server, writer, client, console) if cfg.area_frames \
            else None
    finish_workdir(workdir)  # the server has stopped: the stores are as the demo left them
    _print_table(console, rows)
    console.print("runs whose transition starts between 10 and 15 GPa: "
                  f"{[uid[:8] for uid in onset_hits]}")
    console.print(f"figures in {workdir / 'figures'}; done in {time.perf_counter() - t0:.0f} s")
    return {"runs": rows, "onset_10_15": onset_hits, "area": area}


def _area_detector_run(cfg: DemoConfig, server, writer, client, console: Console) -> dict:
    """Step 5: one run recorded as 2-D frames (HDF5 registered in Tiled, not copied),
    integrated with pyFAI on the way and labelled live by the champion."""
    console.rule("5 · area detector: frames → HDF5 → Tiled (external) → pyFAI → live labels")
    monitor = LivePhaseMonitor(load_model(f"models:/{MODEL_NAME}@{DEFAULT_ALIAS}"),
                               stream=INTEGRATED_STREAM)
    (uid,), router = record_frame_compressions(writer, server.frames, 1, cfg.area_frames,
                                               "Fe", cfg.seed + 7,
                                               DetectorGeometry.square(512), [monitor])
    run = client[uid]
    truth = run_to_dataset(run, stream=INTEGRATED_STREAM)
    live = monitor.labels(uid)
    agree = float((live == truth["label"].values).mean())
    latency = 1e3 * float(np.median(router.latency))
    (source,) = run["primary"]["det_image"].data_sources()
    console.print(
        f"run {uid[:8]}: {len(live)} frames of 512×512 pixels in "
        f"{uri_path(source.assets[0].data_uri)} ({source.management} "
        f"data in Tiled), integrated into stream '{INTEGRATED_STREAM}'; per-curve live labels "
        f"match the simulator's truth on {agree:.0%}; frame → curve, stored and labelled: "
        f"median {latency:.0f} ms")
    return {"uid": uid, "frames": len(live), "live_agreement": agree,
            "latency_ms": latency}


def _figure(truth, node, path: Path) -> None:
    probs = node["probabilities"].values
    save_contour(truth, path, predicted=node["label"].values,
                 probabilities=probs, y_axis="curve",
                 title=f"{truth.attrs.get('sample')}: truth vs predicted phases")


def _fmt(value, unc=None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" + (f" ± {unc:.1f}" if unc is not None else "")


def _print_table(console: Console, rows: list[dict]) -> None:
    table = Table(title="phases written to Tiled (accuracy against the simulator's truth)")
    for col in ("run", "sample", "phases", "onset (GPa)", "end (GPa)", "model", "accuracy"):
        table.add_column(col, justify="right" if col in {"accuracy"} else "left")
    for r in rows:
        table.add_row(r["uid"][:8], str(r.get("sample")), ",".join(map(str, r.get("phases", []))),
                      _fmt(r.get("onset_pressure"), r.get("onset_uncertainty")),
                      _fmt(r.get("end_pressure"), r.get("end_uncertainty")),
                      f"v{r.get('model_version')}", f"{100 * r['accuracy']:.1f} %")
    console.print(table)
