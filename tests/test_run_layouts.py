"""Runs written by other beamlines' Bluesky setups, stored by TiledWriter in a real Tiled
server and read back on the canonical 2θ axis: an NSLS-II XPD/PDF run analysed by
pdfstream, and pyFAI integrations emitted per event as ``q``/``I`` arrays."""

from __future__ import annotations

import time

import numpy as np
import pytest

from specflow.data.schema import SpectraValidationError, energy_to_wavelength, two_theta_to_q
from specflow.ingest.keys import KeyDetectionError
from specflow.ingest.reader import RunLayout, run_to_dataset
from specflow.simulator.simulate import simulate_run

ENERGY = 66.0  # keV, as at XPD


@pytest.fixture(scope="module")
def truth():
    return simulate_run("Si", 8, seed=5, energy_kev=ENERGY)


def _write(client, stream: str, data_keys: dict, rows: list[dict], md: dict) -> str:
    """One run's documents (event_model) through TiledWriter; its uid."""
    from bluesky_tiled_plugins import TiledWriter
    from event_model import compose_run

    run = compose_run(metadata=md)
    desc = run.compose_descriptor(name=stream, data_keys=data_keys, configuration={},
                                  validate=False)
    writer = TiledWriter(client)
    writer("start", run.start_doc)
    writer("descriptor", desc.descriptor_doc)
    for i, data in enumerate(rows):
        writer("event", desc.compose_event(data=data, timestamps=dict.fromkeys(data, 0.0),
                                           seq_num=i + 1, time=time.time(), validate=False))
    writer("stop", run.compose_stop())
    return run.start_doc["uid"]


def test_pdfstream_run(tiled_client, truth):
    n = truth.sizes["two_theta"]
    tth = truth.two_theta.values
    q = two_theta_to_q(tth, energy_to_wavelength(ENERGY))
    det = "pe1c"
    arrays = {f"{det}_chi_2theta": tth, f"{det}_chi_Q": q, f"{det}_iq_Q": q,
              f"{det}_iq_I": np.ones(n)}
    keys = {k: {"dtype": "array", "shape": [n], "source": "pdfstream"} for k in arrays}
    keys[f"{det}_chi_I"] = {"dtype": "array", "shape": [n], "source": "pdfstream"}
    keys[f"{det}_chi_max"] = {"dtype": "number", "shape": [], "source": "pdfstream"}
    keys["dac_pressure"] = {"dtype": "number", "shape": [], "source": "PV:DAC", "units": "GPa"}
    rows = [{**arrays, f"{det}_chi_I": truth.intensity.values[i],
             f"{det}_chi_max": float(truth.intensity.values[i].max()),
             "dac_pressure": float(truth.pressure[i])} for i in range(truth.sizes["curve"])]
    uid = _write(tiled_client, "primary", keys, rows,
                 {"sample_name": "Si", "calibration_md": {"wavelength": energy_to_wavelength(
                     ENERGY) * 1e-10, "dist": 0.2}})
    run = tiled_client[uid]
    with pytest.raises(KeyDetectionError, match="found \\['pe1c_iq_I', 'pe1c_chi_I'\\]; "
                       "name it"):
        run_to_dataset(run)  # two intensity-like arrays: detection does not guess
    ds = run_to_dataset(run, layout="pdfstream")
    assert ds.attrs["spectrum_key"] == f"{det}_chi_I" and ds.attrs["pressure_key"] == \
        "dac_pressure"
    assert np.allclose(ds.two_theta, tth) and np.array_equal(ds.intensity, truth.intensity)
    assert ds.attrs["energy"] == pytest.approx(ENERGY)  # from calibration_md (metres)
    named = run_to_dataset(run, spectrum_key="*_chi_I")  # the 2θ array is found by its name
    assert np.allclose(named.two_theta, tth)
    by_q = run_to_dataset(run, layout=RunLayout(spectrum_key="*_chi_I", radial_key="*_chi_Q"))
    assert np.allclose(by_q.two_theta, tth, atol=1e-6)


def test_pyfai_q_arrays_per_event(tiled_client, truth):
    n = truth.sizes["two_theta"]
    q_nm = two_theta_to_q(truth.two_theta.values, energy_to_wavelength(ENERGY)) * 10
    keys = {"q": {"dtype": "array", "shape": [n], "source": "pyFAI", "units": "1/nm"},
            "I": {"dtype": "array", "shape": [n], "source": "pyFAI"},
            "sigma": {"dtype": "array", "shape": [n], "source": "pyFAI"},
            "pressure_readback": {"dtype": "number", "shape": [], "source": "ruby"}}
    rows = [{"q": q_nm[::-1], "I": truth.intensity.values[i][::-1],
             "sigma": np.sqrt(np.abs(truth.intensity.values[i])),
             "pressure_readback": float(truth.pressure[i])}
            for i in range(truth.sizes["curve"])]
    uid = _write(tiled_client, "integrated", keys, rows, {"sample": "Si"})
    run = tiled_client[uid]
    with pytest.raises(SpectraValidationError, match="in q_nm\\^-1; .*RunLayout\\(energy_kev"):
        run_to_dataset(run, layout="pyfai")
    ds = run_to_dataset(run, layout=RunLayout(energy_kev=ENERGY))  # stream found alone
    assert ds.attrs["stream"] == "integrated" and ds.attrs["spectrum_key"] == "I"
    assert np.allclose(ds.two_theta, truth.two_theta, atol=1e-6)
    assert np.array_equal(ds.intensity, truth.intensity)  # descending q: columns reversed
