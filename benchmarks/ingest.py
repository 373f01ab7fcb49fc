"""Ingest throughput: the live SpectraCollector alone, and RunEngine → TiledWriter end to end
(section ``curves``); area-detector frames (section ``frames``): frames registered in Tiled
as external HDF5 against curves written as event rows, by TiledWriter fed document by
document and by specflow's ``paged_writer`` (step scans: a StreamDatum and an event per
frame; fly scans: one of each per 100 frames), and frame → live label latency;
pyFAI integration of a 1-Mpixel frame by engine against pyFAI's own benchmark call, timed
alike in the same run (section ``integration``; ``OMP_NUM_THREADS`` sets pyFAI's threads).

Run: ``python benchmarks/ingest.py [--sections curves frames integration] [--curves 20000]
[--run-curves 300] [--frames 200] [--pixels 1024]`` (from the repo root).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from event_model import compose_run
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from specflow.ingest import SpectraCollector, compression_ramp, run_to_dataset  # noqa: E402
from specflow.servers.tiled import tiled_server  # noqa: E402
from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector  # noqa: E402
from specflow.simulator.runs import TILED_BATCH_SIZE  # noqa: E402

N_POINTS = 4000


def synthetic_docs(n: int, page: int | None, as_lists: bool = False) -> list[tuple[str, dict]]:
    """One run of ``n`` 4000-point float32 curves as events (``page=None``) or event pages."""
    rng = np.random.default_rng(0)
    pool = rng.random((min(n, 512), N_POINTS), dtype=np.float32) * 1000
    rows = [pool[i % len(pool)] for i in range(n)]
    if as_lists:
        rows = [r.tolist() for r in rows]
    run = compose_run(metadata={"sample": "bench"})
    desc = run.compose_descriptor(
        name="primary", validate=False,
        data_keys={"xrd_spectrum": {"dtype": "array", "shape": [N_POINTS], "source": "b"},
                   "pressure": {"dtype": "number", "shape": [], "source": "b"}},
        configuration={"xrd": {
            "data": {"xrd_two_theta": np.linspace(5, 25, N_POINTS)},
            "timestamps": {"xrd_two_theta": time.time()},
            "data_keys": {"xrd_two_theta": {"dtype": "array", "shape": [N_POINTS],
                                            "source": "b"}}}})
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc)]
    now = time.time()
    if page is None:
        for i, row in enumerate(rows):
            docs.append(("event", desc.compose_event(
                data={"xrd_spectrum": row, "pressure": 0.01 * i},
                timestamps={"xrd_spectrum": now, "pressure": now},
                seq_num=i + 1, time=now + i, validate=False)))
    else:
        for s in range(0, n, page):
            k = min(page, n - s)
            docs.append(("event_page", desc.compose_event_page(
                data={"xrd_spectrum": rows[s:s + k], "pressure": [0.01 * i for i in range(k)]},
                timestamps={"xrd_spectrum": [now] * k, "pressure": [now] * k},
                seq_num=list(range(s + 1, s + k + 1)), time=[now] * k, validate=False)))
    docs.append(("stop", run.compose_stop()))
    return docs


def time_collector(docs: list[tuple[str, dict]], repeats: int = 3) -> float:
    """Median seconds to feed ``docs`` to a fresh collector (buffers grow from 256 rows)."""
    times = []
    for _ in range(repeats):
        collector = SpectraCollector()
        t0 = time.perf_counter()
        for name, doc in docs:
            collector(name, doc)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_run_engine(curves: int, callbacks: Callable[[], list] | None,
                    repeats: int = 3) -> tuple[float, str]:
    """Median seconds for a simulated compression run of ``curves`` curves, and its uid."""
    from bluesky import RunEngine

    times, uid = [], ""
    for _ in range(repeats):
        engine = RunEngine({})
        for callback in callbacks() if callbacks else ():
            engine.subscribe(callback)
        cell = DiamondAnvilCell(seed=0)
        det = IntegratedDetector(cell=cell, material="Fe", seed=0)
        t0 = time.perf_counter()
        (uid,) = engine(compression_ramp(cell, det, 0.0, 30.0, curves))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), uid


def time_detector(curves: int) -> float:
    """Seconds for ``curves`` detector triggers alone (the simulator's cost)."""
    cell = DiamondAnvilCell(seed=0)
    det = IntegratedDetector(cell=cell, material="Fe", seed=0)
    t0 = time.perf_counter()
    for p in np.linspace(0, 30, curves):
        cell.set(p).wait()
        det.trigger()
    return time.perf_counter() - t0


# --- area-detector frames ---------------------------------------------------------------

FRAME_GOALS = {"register": 5000.0, "integrate": 100.0, "latency_ms": 100.0}


def write_frames(path: Path, geometry, n: int) -> None:
    """``n`` simulated frames in an HDF5 file as the detector writes them (not timed)."""
    from specflow.simulator.area import FrameRenderer
    from specflow.simulator.detector import FrameFile
    from specflow.simulator.simulate import XRDSimulator

    sim = XRDSimulator(material="Fe", energy_kev=geometry.energy_kev, seed=0)
    renderer = FrameRenderer(geometry, sim.two_theta, counts=0.05, seed=0)
    patterns = sim.curves(np.linspace(0, 30, 8))
    out = FrameFile(path, geometry.shape)
    for i in range(n):
        out.append(renderer.render(patterns[i % len(patterns)]))
    out.close()


def external_docs(path: Path, shape: tuple[int, int], n: int,
                  block: int = 1) -> list[tuple[str, dict]]:
    """One run whose ``n`` frames live in ``path``: StreamResource, then a StreamDatum and an
    event (pressure only) per frame, as a RunEngine emits them for AreaDetector in a step
    scan (``block=1``); or one StreamDatum and one event page per ``block`` frames, as a
    fly scan's ``collect`` emits them."""
    from event_model import ComposeStreamResource

    from specflow.ingest.frames import HDF5_MIMETYPE, file_uri
    from specflow.simulator.detector import FRAMES_DATASET

    run = compose_run(metadata={"sample": "bench"})
    desc = run.compose_descriptor(
        name="primary", validate=False,
        data_keys={"det_image": {"dtype": "array", "dtype_numpy": "<u4", "shape": list(shape),
                                 "source": "b", "external": "STREAM:"},
                   "pressure": {"dtype": "number", "shape": [], "source": "b"}})
    bundle = ComposeStreamResource(start=run.start_doc)(
        HDF5_MIMETYPE, file_uri(path), "det_image",
        {"dataset": FRAMES_DATASET, "chunk_shape": (1, *shape)})
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc),
            ("stream_resource", bundle.stream_resource_doc)]
    now = time.time()
    for i in range(0, n, block):
        k = min(block, n - i)
        docs.append(("stream_datum", bundle.compose_stream_datum(
            {"start": i, "stop": i + k}, {"start": i + 1, "stop": i + k + 1},
            desc.descriptor_doc)))
        if block == 1:
            docs.append(("event", desc.compose_event(
                data={"pressure": 0.1 * i}, timestamps={"pressure": now}, seq_num=i + 1,
                time=now + i, validate=False)))
        else:
            docs.append(("event_page", desc.compose_event_page(
                data={"pressure": [0.1 * j for j in range(i, i + k)]},
                timestamps={"pressure": [now] * k}, seq_num=list(range(i + 1, i + k + 1)),
                time=[now + j for j in range(i, i + k)], validate=False)))
    docs.append(("stop", run.compose_stop()))
    return docs


def time_writer(client, docs: list[tuple[str, dict]], repeats: int = 3,
                batch_size: int = TILED_BATCH_SIZE, paged: bool = False) -> float:
    """Median seconds for TiledWriter(batch_size) to take one run's documents; ``paged``:
    through specflow's :func:`~specflow.ingest.paging.paged_writer` (pages of events and
    merged StreamDatums, whole pages past the normaliser)."""
    from bluesky_tiled_plugins import TiledWriter

    from specflow.ingest.paging import paged_writer

    times = []
    for _ in range(repeats):
        writer = (paged_writer(client, batch_size) if paged
                  else TiledWriter(client, batch_size=batch_size))
        fresh = [(name, {**doc, "uid": str(uuid.uuid4())} if name in ("start",) else doc)
                 for name, doc in docs]
        start_uid = fresh[0][1]["uid"]
        t0 = time.perf_counter()
        for name, doc in fresh:
            if name == "stop":
                doc = {**doc, "run_start": start_uid, "uid": str(uuid.uuid4())}
            elif name in ("descriptor", "stream_resource"):
                doc = {**doc, "run_start": start_uid}
            writer(name, doc)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: pyFAI engines timed: pixel splitting, algorithm, implementation
PYFAI_METHODS = (("no", "csr", "cython"), ("bbox", "csr", "cython"), ("full", "csr", "cython"),
                 ("no", "histogram", "cython"))


def best_seconds(call: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Seconds per call, the best of ``repeat`` rounds of ``number`` calls after two warm-up
    calls (the first sets up the engine): how pyFAI's own benchmark times a method."""
    call()
    call()
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number


def integration_rows(geometry, frame: np.ndarray, mask: np.ndarray, n: int) -> list[tuple]:
    """Per pyFAI engine, on one frame: setup (first call), then frames/s of pyFAI's own
    benchmark call (``pyFAI-benchmark``'s ``integrate1d(data, min(shape), safe=False,
    unit, method)``: no mask, no polarisation), of the same call onto specflow's 2,000
    points, and of specflow's :class:`~specflow.ingest.integrate.FrameIntegrator` (2,000
    points, mask, polarisation and solid angle, pyFAI's checks on), timed alike in the same
    run."""
    from specflow.ingest.integrate import FrameIntegrator, IntegrationSettings

    rows = []
    for method in PYFAI_METHODS:
        integrator = FrameIntegrator(geometry.integrator(), mask,
                                     IntegrationSettings(npt=2000, method=method))
        t0 = time.perf_counter()
        integrator.integrate(frame)
        setup = time.perf_counter() - t0
        theirs = [best_seconds(lambda ai=geometry.integrator(), m=method, b=bins:
                               ai.integrate1d(frame, b, safe=False, unit="2th_deg", method=m), n)
                  for bins in (min(frame.shape), integrator.settings.npt)]
        ours = best_seconds(lambda f=integrator: f.integrate(frame), n)
        rows.append(("/".join(method), setup, 1 / theirs[0], 1 / theirs[1], 1 / ours))
    return rows


def integration_section(pixels: int, n: int, console: Console) -> None:
    """pyFAI's own benchmark call against specflow's integration, per engine, one frame."""
    from specflow.simulator.area import DetectorGeometry, FrameRenderer, detector_mask
    from specflow.simulator.simulate import XRDSimulator

    geometry = DetectorGeometry.square(pixels)
    sim = XRDSimulator(material="Fe", energy_kev=geometry.energy_kev, seed=0)
    frame = FrameRenderer(geometry, sim.two_theta, counts=0.05, seed=0).render(
        sim.curves(np.array([10.0]))[0])
    table = Table(title=f"pyFAI integration of one {pixels}×{pixels} frame "
                        f"({os.environ.get('OMP_NUM_THREADS', 'all')} OpenMP threads)")
    for col in ("engine (split/algorithm/impl.)", "setup s",
                f"pyFAI-benchmark call ({min(frame.shape)} points), frames/s",
                "the same, 2,000 points", "specflow FrameIntegrator (2,000), frames/s",
                "specflow / pyFAI at 2,000", "goal"):
        table.add_column(col, justify="left" if col.startswith(("engine", "goal")) else "right")
    goal = FRAME_GOALS["integrate"]
    for method, setup, theirs, theirs_npt, ours in integration_rows(
            geometry, frame, detector_mask(geometry), n):
        table.add_row(method, f"{setup:.2f}", f"{theirs:,.1f}", f"{theirs_npt:,.1f}",
                      f"{ours:,.1f}", f"{ours / theirs_npt:.2f}",
                      f"≥ {goal:.0f}/s: {'met' if ours >= goal else 'NOT met'}; within 10 % "
                      f"of pyFAI: {'yes' if ours >= 0.9 * theirs_npt else 'no'}")
    console.print(table)


class Replay:
    """A renderer handing out frames rendered beforehand, in turn: the detector then costs
    what real hardware costs the host (writing the HDF5 file), not the simulation."""

    def __init__(self, frames: np.ndarray, mask: np.ndarray) -> None:
        self.frames, self.mask, self.i = frames, mask, 0

    def render(self, pattern: np.ndarray) -> np.ndarray:
        self.i += 1
        return self.frames[self.i % len(self.frames)]


def live_latency(client, frames_dir: Path, geometry, n: int,
                 replay: np.ndarray | None = None) -> dict:
    """RunEngine → AreaDetector → IntegratingRouter → paged TiledWriter (as
    ``record_frame_compressions`` has it) + live labels: seconds from each frame's event to
    its label, and the frames per second the chain sustains. ``replay``: frames the detector
    hands out instead of simulating each."""
    from bluesky import RunEngine

    from specflow.annotate.live import LivePhaseMonitor
    from specflow.ingest.frames import INTEGRATED_STREAM, IntegratingRouter
    from specflow.ingest.paging import paged_writer
    from specflow.learn.predictor import PhasePredictor
    from specflow.simulator.detector import AreaDetector

    latency: list[float] = []

    def labelled(name: str, doc: dict) -> None:  # after the labeller: the label exists
        if name == "event" and "det_curve" in doc["data"]:
            latency.append(time.time() - doc["time"])

    monitor = LivePhaseMonitor(PhasePredictor(small_bundle()), stream=INTEGRATED_STREAM)
    router = IntegratingRouter(paged_writer(client, TILED_BATCH_SIZE), monitor, labelled)
    engine = RunEngine({}, call_returns_result=False)
    engine.subscribe(router)
    cell = DiamondAnvilCell(seed=0)
    det = AreaDetector(name="det", cell=cell, directory=frames_dir, geometry=geometry,
                       seed=0)
    if replay is not None:
        det.renderer = Replay(replay, det.renderer.mask)
    t0 = time.perf_counter()
    (uid,) = engine(compression_ramp(cell, det, 0.0, 30.0, n))
    seconds = time.perf_counter() - t0
    labels = monitor.labels(uid)
    return {"frames": n, "seconds": seconds, "labels": len(labels),
            "p50_ms": 1e3 * float(np.median(latency)),
            "p95_ms": 1e3 * float(np.percentile(latency, 95))}


def small_bundle() -> dict:
    """A deployable phase model (seeded encoder + probe on 20 % labels, Q grid): the
    labeller's cost is what is measured, not its accuracy."""
    import torch

    from specflow.data.preprocess import Preprocessing
    from specflow.learn.data import to_curves
    from specflow.learn.decode import DecoderConfig
    from specflow.learn.evaluate import pick_probe_labels
    from specflow.learn.pretrain import encode
    from specflow.learn.probe import train_probe
    from specflow.models.convsc import ConvSCEncoder
    from specflow.registry.phase_model import build_bundle
    from specflow.simulator.simulate import simulate_run

    runs = [simulate_run("Fe", 120, seed=11), simulate_run("FeO", 120, seed=12)]
    torch.manual_seed(0)
    encoder = ConvSCEncoder(init="pytorch").eval()
    prep = Preprocessing()
    curves = to_curves(runs, preprocessing=prep)
    h = encode(encoder, curves.x, device="cpu")
    picked = pick_probe_labels(curves, 0.2, strategy="stratified")
    return build_bundle(encoder, train_probe(h[picked], curves.label[picked]), curves.grid, h,
                        prep, DecoderConfig())


def frames_section(n: int, pixels: int, console: Console) -> None:
    from specflow.simulator.area import DetectorGeometry

    geometry = DetectorGeometry.square(pixels)
    table = Table(title=f"area-detector frames ({pixels}×{pixels} pixels, uint32, "
                        f"Bitshuffle-LZ4 HDF5)")
    for col in ("path", "count", "seconds", "per second", "× event rows",
                "× TiledWriter, same batch", "goal"):
        table.add_column(col, justify="left" if col in ("path", "goal") else "right")
    with tempfile.TemporaryDirectory() as tmp, tiled_server(tmp) as server:
        client = server.client()
        path = server.frames / "bench.h5"
        t0 = time.perf_counter()
        write_frames(path, geometry, n)
        table.add_row("simulate, render, write frames (detector)", str(n),
                      f"{time.perf_counter() - t0:.2f}",
                      f"{n / (time.perf_counter() - t0):,.1f}", "", "", "")
        # registration reads no pixels: a file declaring `reg` frames stands for a long run
        reg = max(n, 2000)
        declared = server.frames / "declared.h5"
        import h5py

        with h5py.File(declared, "w") as h5:
            h5.create_dataset("/entry/data/data", shape=(reg, *geometry.shape),
                              chunks=(1, *geometry.shape), dtype="<u4")
        rows_s = time_writer(client, synthetic_docs(reg, None))
        table.add_row("curves as event rows → TiledWriter(50)", str(reg), f"{rows_s:.2f}",
                      f"{reg / rows_s:,.0f}", "1.00", "", "")
        goal = FRAME_GOALS["register"]
        # step scan: a StreamDatum and an event per frame; fly scan: one of each per 100
        for label, block in (("step scan", 1), ("fly scan", 100)):
            for batch in (TILED_BATCH_SIZE, 1000):
                docs = external_docs(declared, geometry.shape, reg, block)
                plain_s = time_writer(client, docs, batch_size=batch)
                paged_s = time_writer(client, docs, batch_size=batch, paged=True)
                for writer, seconds in ((f"TiledWriter({batch})", plain_s),
                                        (f"paged_writer({batch})", paged_s)):
                    table.add_row(f"external HDF5 → {writer}, {label}",
                                  str(reg), f"{seconds:.2f}", f"{reg / seconds:,.0f}",
                                  f"{rows_s / seconds:.1f}", f"{plain_s / seconds:.1f}",
                                  f"≥ {goal:,.0f}/s: "
                                  f"{'met' if reg / seconds >= goal else 'NOT met'}")
        profile = writer_profile(client, external_docs(declared, geometry.shape, reg, 1), 1000)
        with h5py.File(path, "r") as h5:
            bank = h5["/entry/data/data"][:8]
        goal = FRAME_GOALS["latency_ms"]
        for label, replay in (("simulated detector", None), ("replayed frames", bank)):
            live = live_latency(client, server.frames, geometry, max(20, n // 4), replay)
            rate = live["frames"] / live["seconds"]
            met = live["p50_ms"] <= goal and rate >= 10
            table.add_row(f"RunEngine → {label} → Tiled, integrated, labelled "
                          f"(p95 {live['p95_ms']:.0f} ms)", str(live["frames"]),
                          f"{live['seconds']:.2f}", f"{rate:,.1f}", "", "",
                          f"p50 {live['p50_ms']:.0f} ms ≤ {goal:.0f} ms at ≥ 10/s: "
                          f"{'met' if met else 'NOT met'}")
    console.print(table)
    console.print(f"what bounds paged_writer(1000), step scan, {reg} frames (cProfile; "
                  f"the profiler slows the Python side): {profile}")


def writer_profile(client, docs: list[tuple[str, dict]], batch_size: int) -> str:
    """Where ``paged_writer(batch_size)`` spends its time on ``docs``: waiting for the
    server's responses, TiledWriter's JSON-schema checks, the rest."""
    import cProfile
    import pstats

    from specflow.ingest.paging import paged_writer

    writer = paged_writer(client, batch_size)
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    for name, doc in docs:
        writer(name, doc)
    profiler.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (cc, nc, tt, ct, callers)
    waiting = sum(v[2] for k, v in stats.items() if k[2] == "<method 'recv' of '_socket.socket' "
                  "objects>")
    responses = sum(v[1] for k, v in stats.items() if k[2] == "<method 'recv' of "
                    "'_socket.socket' objects>")
    schema = max((v[3] for k, v in stats.items()
                  if k[0].endswith("jsonschema/validators.py") and k[2] == "iter_errors"),
                 default=0.0)
    return (f"{total:.2f} s: waiting for the server {waiting:.2f} s ({responses} socket "
            f"reads), JSON-schema checks {schema:.2f} s, the rest "
            f"{total - waiting - schema:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sections", nargs="+", default=["curves", "frames", "integration"],
                        choices=["curves", "frames", "integration"])
    parser.add_argument("--curves", type=int, default=20000, help="curves for collector runs")
    parser.add_argument("--run-curves", type=int, default=300, help="curves per RunEngine run")
    parser.add_argument("--frames", type=int, default=200, help="frames for the frames section")
    parser.add_argument("--pixels", type=int, default=1024, help="detector side (pixels)")
    args = parser.parse_args()
    console = Console(width=140)
    if "curves" in args.sections:
        curves_section(args.curves, args.run_curves, console)
    if "frames" in args.sections:
        frames_section(args.frames, args.pixels, console)
    if "integration" in args.sections:
        integration_section(args.pixels, max(10, args.frames // 10), console)


def curves_section(n: int, m: int, console: Console) -> None:
    table = Table(title=f"specflow ingest throughput ({N_POINTS}-point float32 curves)")
    for col in ("path", "curves", "seconds", "curves/s"):
        table.add_column(col, justify="left" if col == "path" else "right")

    def row(label: str, count: int, seconds: float) -> None:
        table.add_row(label, str(count), f"{seconds:.3f}", f"{count / seconds:,.0f}")

    for label, page in (("collector: event_page x1000", 1000), ("collector: event_page x100", 100),
                        ("collector: event_page x10", 10), ("collector: single events", None)):
        row(label, n, time_collector(synthetic_docs(n, page)))
    k = min(n, 2000)
    row("collector: event_page x100, JSON lists", k, time_collector(synthetic_docs(k, 100, True)))

    from bluesky_tiled_plugins import TiledWriter

    from specflow.ingest.paging import paged_writer

    with tempfile.TemporaryDirectory() as tmp, tiled_server(tmp) as server:
        client = server.client()
        time_run_engine(10, None, repeats=1)  # warm up imports and the simulator
        row("simulated detector alone (move + trigger)", m, time_detector(m))
        row("RunEngine + simulated detector (no callbacks)", m, time_run_engine(m, None)[0])
        row("RunEngine + SpectraCollector", m,
            time_run_engine(m, lambda: [SpectraCollector()])[0])
        for batch in (TILED_BATCH_SIZE, 10000):
            row(f"RunEngine + TiledWriter(batch_size={batch})", m,
                time_run_engine(m, lambda b=batch: [TiledWriter(client, batch_size=b)])[0])
        row(f"RunEngine + paged_writer({TILED_BATCH_SIZE}) (record_compressions' writer)", m,
            time_run_engine(m, lambda: [paged_writer(client, TILED_BATCH_SIZE)])[0])
        seconds, uid = time_run_engine(
            m, lambda: [TiledWriter(client, batch_size=TILED_BATCH_SIZE), SpectraCollector()])
        row(f"RunEngine + TiledWriter({TILED_BATCH_SIZE}) + SpectraCollector", m, seconds)
        t0 = time.perf_counter()
        run_to_dataset(client[uid])
        row("run_to_dataset (read back from Tiled)", m, time.perf_counter() - t0)
    console.print(table)


if __name__ == "__main__":
    main()
