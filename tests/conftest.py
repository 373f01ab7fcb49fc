"""Shared fixtures: one real, writable Tiled server per test session and document factories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specflow.servers.ports import free_port  # test_deploy and test_live_remote import it here

N_POINTS = 4000
# The authors' released checkpoint lives beside the checkout where it is lent (never in the
# repository); the library reads it only through $SPECFLOW_REFERENCE_DIR.
_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
if "SPECFLOW_REFERENCE_DIR" not in os.environ and _REFERENCE.is_dir():
    os.environ["SPECFLOW_REFERENCE_DIR"] = str(_REFERENCE)


def invoke_cli(args: list[Any], exit_code: int = 0, env: dict[str, str] | None = None) -> str:
    """Run the real ``specflow`` app in-process; check the exit code; return its output
    (terminal 200 columns wide, so tables do not wrap)."""
    from typer.testing import CliRunner

    from specflow.cli import app

    env = {"COLUMNS": "200", **(env or {})}
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == exit_code, f"{args}: exit {result.exit_code}\n{result.output}"
    return result.output


@pytest.fixture
def cli() -> Callable[..., str]:
    """:func:`invoke_cli`: ``cli(["annotate", ...])`` runs the real app, exit code checked."""
    return invoke_cli


@pytest.fixture(scope="session")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Tiled server (SQLite catalog, zarr + DuckDB storage, API key) on 127.0.0.1."""
    from specflow.servers.tiled import tiled_server as serve

    with serve(tmp_path_factory.mktemp("tiled")) as info:
        yield info


@pytest.fixture(scope="session")
def tiled_client(tiled_server: Any) -> Any:
    """A client of :func:`tiled_server` (root is a ``CatalogOfBlueskyRuns``)."""
    return tiled_server.client()


def _event_model_docs(
    n_events: int = 10,
    *,
    n_points: int = N_POINTS,
    page_size: int | None = None,
    stream: str = "primary",
    seed: int = 0,
    md: dict | None = None,
) -> tuple[list[tuple[str, dict]], np.ndarray, np.ndarray]:
    """Documents of one synthetic run: start, descriptor, events (or pages), stop.

    Returns ``(docs, intensity (n, L) float32, pressure (n,))``.
    """
    from event_model import compose_run

    rng = np.random.default_rng(seed)
    intensity = rng.random((n_events, n_points), dtype=np.float32) * 1000
    pressure = np.linspace(0.0, 30.0, n_events)
    grid = np.linspace(5.0, 25.0, n_points)
    run = compose_run(metadata={"sample": "Fe-1", "material": "Fe", **(md or {})})
    data_keys = {
        "xrd_spectrum": {"dtype": "array", "shape": [n_points], "dtype_numpy": "<f4",
                         "source": "sim", "object_name": "xrd"},
        "pressure": {"dtype": "number", "shape": [], "source": "sim", "units": "GPa"},
        "pressure_setpoint": {"dtype": "number", "shape": [], "source": "sim"},
    }
    configuration = {"xrd": {"data": {"xrd_two_theta": grid, "xrd_energy": 25.6},
                             "timestamps": {"xrd_two_theta": 0.0, "xrd_energy": 0.0},
                             "data_keys": {}}}
    desc = run.compose_descriptor(name=stream, data_keys=data_keys,
                                  configuration=configuration, validate=False)
    docs: list[tuple[str, dict]] = [("start", run.start_doc),
                                    ("descriptor", desc.descriptor_doc)]
    now = time.time()
    step = page_size or 1
    for s in range(0, n_events, step):
        sl = slice(s, min(s + step, n_events))
        k = sl.stop - sl.start
        data = {"xrd_spectrum": list(intensity[sl]), "pressure": list(pressure[sl]),
                "pressure_setpoint": list(pressure[sl])}
        ts = {key: [now] * k for key in data}
        times = [now + i for i in range(sl.start, sl.stop)]
        if page_size:
            docs.append(("event_page", desc.compose_event_page(
                data=data, timestamps=ts, seq_num=list(range(sl.start + 1, sl.stop + 1)),
                time=times, validate=False)))
        else:
            docs.append(("event", desc.compose_event(
                data={key: v[0] for key, v in data.items()},
                timestamps={key: v[0] for key, v in ts.items()},
                seq_num=sl.start + 1, time=times[0], validate=False)))
    docs.append(("stop", run.compose_stop()))
    return docs, intensity, pressure


@pytest.fixture
def make_docs() -> Callable[..., tuple[list[tuple[str, dict]], np.ndarray, np.ndarray]]:
    """Factory for synthetic Bluesky documents of one run (see ``_event_model_docs``)."""
    return _event_model_docs


# --------------------------------------------------------------- annotate: model + runs
PHASE_MODEL = "specflow-phase-annotate"


@pytest.fixture(scope="session")
def small_phase_model() -> Any:
    """(bundle, runs): a real deployable bundle and the two simulated runs it was fit on.

    A frozen, seeded ConvSC encoder plus a linear probe trained on 20 % of the labels of a
    simulated Fe and FeO run (stratified), on the Q grid with the sequence decoder: labels
    simulated runs well in seconds (SSL pretraining itself is test_learn's job).
    """
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

    runs = [simulate_run("Fe", 160, seed=11), simulate_run("FeO", 160, seed=12)]
    with torch.random.fork_rng():  # leave the global RNG as other tests expect it
        torch.manual_seed(0)
        encoder = ConvSCEncoder(init="pytorch").eval()
    prep = Preprocessing(grid=(1.3, 5.5, 1024))
    curves = to_curves(runs, preprocessing=prep)
    h = encode(encoder, curves.x, device="cpu")
    picked = pick_probe_labels(curves, 0.2, strategy="stratified")
    bundle = build_bundle(encoder, train_probe(h[picked], curves.label[picked]), curves.grid,
                          h, prep, DecoderConfig())
    return bundle, runs


@pytest.fixture(scope="session")
def phase_registry(tmp_path_factory: pytest.TempPathFactory, small_phase_model: Any) -> Any:
    """A real SQLite MLflow store holding two versions of :func:`small_phase_model`.

    Version 1 holds ``champion``; version 2 (same weights) is registered but not promoted.
    Returns a namespace with ``uri`` (tracking URI), ``name`` and ``versions``.
    """
    import types

    import mlflow

    from specflow.registry.promotion import log_phase_model, promote, register
    from specflow.registry.tracking import artifact_root

    bundle, runs = small_phase_model
    store = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.create_experiment("annotate-test", artifact_location=artifact_root(uri))
    versions = []
    for _ in range(2):
        with mlflow.start_run(experiment_id=exp):
            info = log_phase_model(bundle)
        versions.append(str(register(info.model_uri, PHASE_MODEL).version))
    promote(PHASE_MODEL, versions[0], "champion", runs[:1])
    return types.SimpleNamespace(uri=uri, name=PHASE_MODEL, versions=versions,
                                 champion=f"models:/{PHASE_MODEL}@champion")


@pytest.fixture
def mlflow_store(phase_registry: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point MLflow (this process and children) at :func:`phase_registry`'s store."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", phase_registry.uri)
    mlflow.set_tracking_uri(phase_registry.uri)
    mlflow.set_registry_uri(phase_registry.uri)
    yield phase_registry
    mlflow.set_tracking_uri(None)


@pytest.fixture
def embedded_tracking(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MLFLOW_* URIs in the environment (commands use the embedded store of their
    --workdir); whatever MLflow exports meanwhile is removed afterwards."""
    import mlflow

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.setenv(var, "")  # records the original, so teardown restores it
        monkeypatch.delenv(var)
    yield
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def record_ramp(client: Any, *, material: str = "Fe", start: float = 0.0, stop: float = 30.0,
                num: int = 40, decompress_to: float | None = None, seed: int = 0,
                md: dict | None = None, engine: Any = None) -> str:
    """One simulated compression ramp through a real RunEngine + TiledWriter; its uid."""
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter

    from specflow.ingest import compression_ramp
    from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector

    if engine is None:
        engine = RunEngine({}, call_returns_result=False)
        engine.subscribe(TiledWriter(client, batch_size=50))
    cell = DiamondAnvilCell(name="pressure", seed=seed)
    det = IntegratedDetector(name="xrd", cell=cell, material=material, seed=seed)
    (uid,) = engine(compression_ramp(cell, det, start, stop, num, decompress_to=decompress_to,
                                     md=md or {}))
    return uid


# --------------------------------------------------------------- servers in processes
@contextmanager
def serve_mlflow(directory: Path, backend_uri: str, timeout: float = 120.0) -> Iterator[str]:
    """A real ``mlflow server`` process on loopback (artifacts in ``directory/artifacts``)
    over ``backend_uri`` (SQLite or PostgreSQL); yields its URL, stops its process group."""
    import mlflow

    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", backend_uri,
           "--artifacts-destination", str(directory / "artifacts"), "--workers", "1"]
    log_path = directory / "server.log"
    log = open(log_path, "w")  # noqa: SIM115 - the server outlives this block
    proc = subprocess.Popen(cmd, cwd=directory, stdout=subprocess.DEVNULL, stderr=log,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(log_path.read_text()[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server runs helper processes: stop the group
        proc.wait(timeout=30)
        log.close()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL server on loopback (:mod:`specflow.servers.postgres`).

    Skipped where the machine has no PostgreSQL, except under ``SPECFLOW_REQUIRE_POSTGRES=1``
    (``make test`` sets it, so CI fails instead of skipping).
    """
    from specflow.servers.postgres import PostgresUnavailable, postgres_server

    try:
        find = postgres_server()
        server = find.__enter__()
    except PostgresUnavailable as exc:
        if os.environ.get("SPECFLOW_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SPECFLOW_REQUIRE_POSTGRES=1 but {exc}")
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        find.__exit__(None, None, None)
