"""RunEngine → TiledWriter → real Tiled server → run_to_dataset, bit for bit."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky_tiled_plugins import TiledWriter
from event_model import pack_event_page

from specflow.data.schema import SpectraValidationError, validate
from specflow.ingest import SpectraCollector, collect, compression_ramp, run_to_dataset
from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector
from specflow.simulator.runs import TILED_BATCH_SIZE
from specflow.simulator.simulate import XRDSimulator

pytestmark = [pytest.mark.integration]

class Recorder:
    """Keeps a copy of every event's spectrum, pressure and time as the RunEngine emits it."""

    def __init__(self) -> None:
        self.rows: dict[str, list] = {}

    def __call__(self, name: str, doc: dict) -> None:
        if name == "event":
            data = doc["data"]
            self.rows.setdefault(doc["descriptor"], []).append(
                (data["xrd_spectrum"].copy(), data["pressure"], doc["time"]))

    def arrays(self, descriptor: str | None = None):
        rows = self.rows[descriptor or next(iter(self.rows))]
        return tuple(np.array(col) for col in zip(*rows, strict=True))


@pytest.fixture
def beamline():
    cell = DiamondAnvilCell(name="pressure", seed=5)
    det = IntegratedDetector(name="xrd", cell=cell, simulator=XRDSimulator("Fe", seed=5),
                             material="Fe")
    return cell, det


@pytest.fixture
def engine(tiled_client):
    engine = RunEngine({})
    engine.subscribe(TiledWriter(tiled_client, batch_size=TILED_BATCH_SIZE))
    return engine


def test_round_trip_460_curves_bit_for_bit(engine, beamline, tiled_client):
    cell, det = beamline
    recorder, collector = Recorder(), SpectraCollector()
    engine.subscribe(recorder)
    engine.subscribe(collector)
    (uid,) = engine(compression_ramp(cell, det, 0.0, 30.0, 300, decompress_to=0.0,
                                     decompress_num=160, sample="Fe-roundtrip"))
    intensity, pressure, times = recorder.arrays()
    assert intensity.shape == (460, 4000) and intensity.dtype == np.float32

    ds = validate(run_to_dataset(tiled_client[uid]))
    assert ds["intensity"].dtype == np.float32
    assert np.array_equal(ds["intensity"].values.view(np.uint32), intensity.view(np.uint32))
    assert np.array_equal(ds["pressure"].values, pressure)
    assert np.array_equal(ds["time"].values, times)
    assert np.array_equal(ds["two_theta"].values, det.simulator.two_theta)
    assert np.array_equal(ds["seq_num"].values, np.arange(1, 461))
    assert ds["pressure_setpoint"].values[299] == 30.0
    assert ds.attrs["run_uid"] == uid and ds.attrs["sample"] == "Fe-roundtrip"
    assert ds.attrs["energy"] == 25.6 and ds.attrs["material"] == "Fe"

    live = collector.dataset(uid)  # the live view agrees with the stored run
    for name in ("intensity", "pressure", "time", "two_theta", "seq_num"):
        assert np.array_equal(live[name].values, ds[name].values), name


def test_documents_export_as_events_and_pages(engine, beamline, tiled_client):
    cell, det = beamline
    recorder = Recorder()
    engine.subscribe(recorder)
    (uid,) = engine(compression_ramp(cell, det, 0.0, 10.0, 12))
    docs = list(tiled_client[uid].documents())  # the json-seq exporter of the server
    intensity, pressure, _ = recorder.arrays()
    for ds in (
        collect(docs).dataset(uid),
        collect([docs[0], docs[1], ("event_page", pack_event_page(
            *[doc for name, doc in docs if name == "event"]))]).dataset(uid),
    ):
        assert np.array_equal(ds["intensity"].values, intensity)
        assert np.array_equal(ds["pressure"].values, pressure)


def two_stream_plan(cell, det):
    """Dark curves in a 'dark' stream, then a short ramp in 'primary'."""

    @bpp.run_decorator(md={"sample": "two-streams", "material": "Fe"})
    def inner():
        for p in (1.0, 2.0, 3.0):
            yield from bps.mv(cell, p)
            yield from bps.trigger_and_read([det, cell], name="primary")
        yield from bps.trigger_and_read([det, cell], name="dark")

    return (yield from inner())


def test_several_streams_and_runs(engine, beamline, tiled_client):
    cell, det = beamline
    recorder, collector = Recorder(), SpectraCollector(streams=None)
    engine.subscribe(recorder)
    engine.subscribe(collector)
    (uid1,) = engine(two_stream_plan(cell, det))
    (uid2,) = engine(compression_ramp(cell, det, 3.0, 5.0, 3))
    primary = run_to_dataset(tiled_client[uid1])
    dark = run_to_dataset(tiled_client[uid1], stream="dark")
    assert primary.sizes["curve"] == 3 and dark.sizes["curve"] == 1
    assert np.array_equal(dark["intensity"].values, collector.dataset(uid1, "dark")["intensity"])
    assert np.array_equal(primary["pressure"].values,
                          collector.dataset(uid1, "primary")["pressure"].values)
    assert collector.dataset().attrs["run_uid"] == uid2
    assert set(collector.datasets) == {uid1, uid2}
    assert run_to_dataset(tiled_client[uid2]).sizes["curve"] == 3


def test_reader_errors_name_the_problem(engine, beamline, tiled_client):
    cell, det = beamline
    (uid,) = engine(compression_ramp(cell, det, 0.0, 1.0, 2))
    with pytest.raises(SpectraValidationError, match="missing pressure"):
        run_to_dataset(tiled_client[uid], pressure_key="no_such_key")
    with pytest.raises(LookupError, match="spectrum key"):
        run_to_dataset(tiled_client[uid], spectrum_key="nope")


def test_ingest_demo_command_writes_runs(tiled_server, tiled_client, cli):
    output = cli([
        "ingest-demo", "--tiled-uri", tiled_server.api_uri, "--api-key", tiled_server.api_key,
        "--runs", "2", "--curves", "15", "--material", "FeO", "--seed", "7"])
    uids = [line for line in output.splitlines() if line.count("-") == 4]
    assert len(uids) == 2
    for uid in uids:
        ds = run_to_dataset(tiled_client[uid])
        assert ds.sizes["curve"] == 15 and ds.attrs["material"] == "FeO"
        assert ds["pressure_setpoint"].values.max() == pytest.approx(33.0)
        assert ds["pressure_setpoint"].values[-1] == 0.0


def test_embedded_server_keeps_runs_across_restarts(tmp_path, beamline, tiled_client):
    from specflow.servers.tiled import tiled_server

    cell, det = beamline
    with tiled_server(tmp_path) as server:
        engine = RunEngine({})
        engine.subscribe(TiledWriter(server.client(), batch_size=TILED_BATCH_SIZE))
        (uid,) = engine(compression_ramp(cell, det, 0.0, 2.0, 3))
        assert (tmp_path / "catalog.db").exists() and (tmp_path / "data").is_dir()
    with tiled_server(tmp_path, api_key="otherkey") as server:
        client = server.client()
        assert type(client).__name__ == "CatalogOfBlueskyRuns"
        assert client[-1].start["uid"] == uid
        assert run_to_dataset(client[uid]).sizes["curve"] == 3
        assert uid not in tiled_client  # the session server keeps its own key and runs


def test_subscribers_hear_about_finished_runs(engine, beamline, tiled_client):
    finished: dict[str, threading.Event] = {}

    def on_update(update):
        if "stop" in update.metadata:
            finished.setdefault(update.key, threading.Event()).set()

    subscription = tiled_client.subscribe()
    subscription.child_metadata_updated.add_callback(on_update)
    subscription.start_in_thread(start=None)
    try:
        time.sleep(0.2)
        cell, det = beamline
        (uid,) = engine(compression_ramp(cell, det, 0.0, 2.0, 3))
        deadline = time.monotonic() + 5
        while uid not in finished and time.monotonic() < deadline:
            time.sleep(0.05)
        assert uid in finished
    finally:
        subscription.disconnect()


def test_a_server_without_table_storage_is_refused_before_any_document(tmp_path, cli):
    """Served with array storage only (as `tiled serve catalog -w DIR` is), the ingest used
    to fail after 49 events with HTTP 500 and leave a half-written run behind."""
    from specflow.servers.tiled import tiled_server

    with tiled_server(tmp_path / "tiled", tables=False) as info:
        out = cli(["ingest-demo", "--tiled-uri", info.api_uri, "--api-key", info.api_key,
                   "--runs", "1", "--curves", "20"], exit_code=1)
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "cannot store event tables" in errors[0], out
        assert "tables.duckdb" in errors[0] and "Traceback" not in out
        assert "Fe runs" not in out  # refused before the first run started
        assert list(info.client()) == []  # no run, and no scratch container left behind
