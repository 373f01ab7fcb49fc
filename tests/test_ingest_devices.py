"""Simulated beamline: cell and detector describe/read/move, and the compression plan."""

from __future__ import annotations

import time

import numpy as np
import pytest
from bluesky import RunEngine

from specflow.ingest import compression_ramp, pressure_path
from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector
from specflow.simulator.simulate import XRDSimulator


@pytest.fixture(scope="module")
def simulator() -> XRDSimulator:
    return XRDSimulator(material="Fe", seed=0)


def test_cell_describe_read_and_move():
    cell = DiamondAnvilCell(name="pressure", settle_sigma=0.02, seed=1)
    desc = cell.describe()
    assert set(desc) == {"pressure", "pressure_setpoint"}
    assert desc["pressure"]["dtype"] == "number" and desc["pressure"]["units"] == "GPa"
    assert "pressure_ramp_rate" in cell.describe_configuration()
    cell.set(12.0).wait(timeout=5)
    reading = cell.read()
    assert reading["pressure_setpoint"]["value"] == 12.0
    assert reading["pressure"]["value"] != 12.0
    assert abs(reading["pressure"]["value"] - 12.0) < 0.2
    assert cell.pressure_history[-1] == reading["pressure"]["value"]


def test_cell_ramp_takes_time_when_scaled():
    cell = DiamondAnvilCell(ramp_rate=20.0, time_scale=1.0, settle_sigma=0.0)
    t0 = time.monotonic()
    status = cell.set(4.0)
    assert not status.done
    status.wait(timeout=5)
    assert time.monotonic() - t0 >= 0.18  # 4 GPa at 20 GPa/s
    assert cell.pressure_history[-8:] == pytest.approx(np.arange(0.5, 4.01, 0.5))


def test_detector_describe_and_read(simulator):
    cell = DiamondAnvilCell(settle_sigma=0.0)
    det = IntegratedDetector(name="xrd", cell=cell, simulator=simulator, energy_kev=25.6)
    key = det.describe()["xrd_spectrum"]  # before any trigger
    assert key["dtype"] == "array" and key["shape"] == [4000]
    assert key["dtype_numpy"] == "<f4" and key["dims"] == ["two_theta"]
    config = det.read_configuration()
    np.testing.assert_array_equal(config["xrd_two_theta"]["value"], simulator.two_theta)
    assert config["xrd_energy"]["value"] == 25.6
    assert det.trigger().done
    curve = det.read()["xrd_spectrum"]["value"]
    assert curve.dtype == np.float32 and curve.shape == (4000,)
    assert np.isfinite(curve).all() and curve.max() > 0


def test_detector_follows_the_pressure_path_with_hysteresis():
    def curve_after(path):
        cell = DiamondAnvilCell(settle_sigma=0.0)
        det = IntegratedDetector(cell=cell, simulator=XRDSimulator("Fe", seed=3))
        for p in path:
            cell.set(p).wait(timeout=5)
        det.trigger()
        return det.spectrum.get()

    reference = XRDSimulator("Fe", seed=4)
    low = reference.curves(np.array([11.0]), phase_fraction=np.array([0.0]))[0]
    high = reference.curves(np.array([11.0]), phase_fraction=np.array([1.0]))[0]
    up = curve_after([5.0, 11.0])  # compression: still the low-pressure phase
    down = curve_after([5.0, 11.0, 30.0, 11.0])  # decompression: high-pressure phase stays
    assert np.linalg.norm(up - low) < np.linalg.norm(up - high)
    assert np.linalg.norm(down - high) < np.linalg.norm(down - low)


def test_compression_ramp_plan(simulator):
    engine = RunEngine({})
    docs = []
    engine.subscribe(lambda name, doc: docs.append((name, doc)))
    cell = DiamondAnvilCell(seed=2)
    det = IntegratedDetector(cell=cell, simulator=simulator, material="Fe")
    (uid,) = engine(compression_ramp(cell, det, 0.0, 20.0, 6, decompress_to=10.0,
                                     decompress_num=2, md={"operator": "test"}))
    start = docs[0][1]
    assert start["uid"] == uid and start["plan_name"] == "compression_ramp"
    assert start["sample"] == "Fe" and start["material"] == "Fe"
    assert start["energy"] == 25.6 and start["wavelength"] == pytest.approx(0.4843, abs=1e-4)
    assert "compression 0→20 GPa" in start["description"] and start["operator"] == "test"
    assert start["plan_args"]["decompress_to"] == 10.0 and start["num_points"] == 8
    events = [doc for name, doc in docs if name == "event"]
    setpoints = [e["data"]["pressure_setpoint"] for e in events]
    np.testing.assert_allclose(setpoints, pressure_path(0.0, 20.0, 6, 10.0, 2))
    np.testing.assert_allclose(setpoints, [0, 4, 8, 12, 16, 20, 15, 10])
    for e in events:
        assert e["data"]["xrd_spectrum"].shape == (4000,)
        assert abs(e["data"]["pressure"] - e["data"]["pressure_setpoint"]) < 0.2


def test_detector_takes_material_and_energy_from_its_simulator():
    det = IntegratedDetector(cell=DiamondAnvilCell(),
                             simulator=XRDSimulator("FeO", energy_kev=30.0, seed=0))
    assert det.material == "FeO"
    assert det.read_configuration()["xrd_energy"]["value"] == 30.0
