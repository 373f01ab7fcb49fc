"""Area-detector frames: rendering, pyFAI integration, files → curves, HDF5 registered in a
real Tiled server as external data, the integrated stream and live labels."""

from __future__ import annotations

import fabio.cbfimage
import fabio.edfimage
import fabio.tifimage
import h5py
import numpy as np
import pandas as pd
import pytest
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter
from scipy.ndimage import gaussian_filter1d

from specflow.data.io import read_spectra
from specflow.ingest import SpectraCollector, compression_ramp, run_to_dataset
from specflow.ingest.frames import INTEGRATED_STREAM, IntegratingRouter, uri_path
from specflow.ingest.integrate import FrameIntegrator, IntegrationSettings, integrate_files
from specflow.simulator.area import DetectorGeometry, FrameRenderer, detector_mask
from specflow.simulator.detector import FRAMES_DATASET, AreaDetector
from specflow.simulator.devices import DiamondAnvilCell
from specflow.simulator.simulate import XRDSimulator

pytestmark = [pytest.mark.integration]

SMALL = DetectorGeometry(shape=(256, 256), pixel_size=300e-6, beam_center=(128.0, 50.0))


@pytest.fixture(scope="module")
def simulator() -> XRDSimulator:
    return XRDSimulator(material="Fe", energy_kev=SMALL.energy_kev, seed=2)


def test_poni_round_trip_and_mask(tmp_path):
    poni = SMALL.write_poni(tmp_path / "det.poni")
    SMALL.write_poni(poni)  # written twice: replaced, not appended
    loaded = FrameIntegrator(poni)
    assert loaded.energy_kev == pytest.approx(SMALL.energy_kev, rel=1e-6)
    assert loaded.integrator.dist == pytest.approx(SMALL.distance)
    mask = detector_mask(SMALL, beamstop_radius=10, module=(64, 64), gap=3)
    assert mask.dtype == np.int8 and mask[128, 50] == 1 and mask[64, 200] == 1
    assert mask[100, 100] == 0 and 0.05 < mask.mean() < 0.3
    lo, hi = SMALL.two_theta_range()
    assert lo < 1 and 20 < hi < 40


def test_integrating_a_rendered_frame_gives_back_the_pattern(simulator):
    pattern = simulator.curves(np.array([3.0]))[0]
    renderer = FrameRenderer(SMALL, simulator.two_theta, sparkle=0.3, counts=50.0, seed=1)
    frame = renderer.render(pattern)
    assert frame.dtype == np.uint32 and frame.shape == SMALL.shape
    assert np.all(frame[renderer.mask != 0] == 0)  # masked pixels read 0
    integrator = FrameIntegrator(SMALL.integrator(), renderer.mask,
                                 IntegrationSettings(npt=500))
    curve = integrator.integrate(frame)
    tth = integrator.two_theta
    inside = (tth > simulator.two_theta[0] + 0.5) & (tth < min(simulator.two_theta[-1],
                                                              tth[-1]) - 1)
    # 300 µm pixels span about one 2θ bin: peaks come back broadened by that footprint
    expected = gaussian_filter1d(np.interp(tth, simulator.two_theta, pattern) * 50.0, 1.0)
    # solid angle and polarisation corrected away: the intensity scale comes back, and the
    # strongest ring sits where the pattern's strongest peak is
    assert np.corrcoef(curve[inside], expected[inside])[0, 1] > 0.97
    ratio = np.median(curve[inside] / np.maximum(expected[inside], 1e-9))
    assert 0.7 < ratio < 1.3
    assert abs(tth[inside][np.argmax(curve[inside])]
               - tth[inside][np.argmax(expected[inside])]) < 0.2
    with pytest.raises(ValueError, match="2-D"):
        integrator.integrate(frame[0])


def test_integrate_command_on_image_files(tmp_path, simulator, cli):
    """TIFF, CBF, a multi-frame EDF and an HDF5 stack, a mask file and a pressure table →
    the canonical Dataset (the energy from the .poni), with clear errors for bad input."""
    renderer = FrameRenderer(SMALL, simulator.two_theta, counts=20.0, seed=3)
    pressures = [1.0, 4.0, 8.0, 12.0, 16.0, 20.0]
    frames = [renderer.render(simulator.curves(np.array([p]))[0]) for p in pressures]
    poni = SMALL.write_poni(tmp_path / "det.poni")
    mask = tmp_path / "mask.edf"
    fabio.edfimage.EdfImage(data=renderer.mask).write(str(mask))
    fabio.tifimage.TifImage(data=frames[0].astype(np.float32)).write(str(tmp_path / "a.tif"))
    fabio.cbfimage.CbfImage(data=frames[1].astype(np.int32)).write(str(tmp_path / "b.cbf"))
    edf = fabio.edfimage.EdfImage(data=frames[2].astype(np.int32))
    edf.append_frame(data=frames[3].astype(np.int32))
    edf.write(str(tmp_path / "c.edf"))
    with h5py.File(tmp_path / "d.h5", "w") as h5:
        h5.create_dataset(FRAMES_DATASET, data=np.stack(frames[4:]))
    files = [tmp_path / n for n in ("a.tif", "b.cbf", "c.edf", "d.h5")]
    pd.DataFrame({"pressure": pressures}).to_csv(tmp_path / "p.csv", index=False)
    out = tmp_path / "run.nc"
    cli(["integrate", *map(str, files), "--poni", str(poni), "--mask", str(mask),
         "--pressure", str(tmp_path / "p.csv"), "--out", str(out), "--npt", "400"])
    ds = read_spectra(out)
    assert ds.sizes == {"curve": 6, "two_theta": 400}
    np.testing.assert_allclose(ds["pressure"], pressures)
    assert ds.attrs["energy"] == pytest.approx(SMALL.energy_kev, rel=1e-6)
    assert "q" in ds.coords and ds["source"].values[2].endswith("c.edf#0")
    direct = FrameIntegrator(poni, renderer.mask, IntegrationSettings(npt=400))
    np.testing.assert_allclose(ds["intensity"].values[1], direct.integrate(frames[1]),
                               rtol=1e-5)
    pd.DataFrame({"pressure": pressures[:3]}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ValueError, match="3 pressures for 6 frames"):
        integrate_files(poni, files, tmp_path / "short.csv", mask)
    (tmp_path / "junk.tif").write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        integrate_files(poni, [tmp_path / "junk.tif"], tmp_path / "p.csv")
    bad = cli(["integrate", str(files[0]), "--poni", str(tmp_path / "none.poni"),
               "--pressure", str(tmp_path / "p.csv"), "--out", str(out)], exit_code=1)
    assert "none.poni" in bad


def test_frames_in_hdf5_registered_in_tiled_integrated_and_labelled_live(
        tiled_server, tiled_client, tmp_path, small_phase_model):
    """RunEngine → AreaDetector (HDF5, StreamResource/StreamDatum) → IntegratingRouter →
    TiledWriter (frames external, not copied) + live labels on the integrated stream."""
    from specflow.annotate.live import LivePhaseMonitor
    from specflow.learn.predictor import PhasePredictor

    engine = RunEngine({}, call_returns_result=False)
    collector = SpectraCollector(streams=INTEGRATED_STREAM)
    monitor = LivePhaseMonitor(PhasePredictor(small_phase_model[0]), stream=INTEGRATED_STREAM)
    router = IntegratingRouter(TiledWriter(tiled_client, batch_size=5), collector, monitor)
    engine.subscribe(router)
    cell = DiamondAnvilCell(name="pressure", seed=1)
    det = AreaDetector(name="det", cell=cell, directory=tiled_server.frames, geometry=SMALL,
                       counts=5.0, seed=1)
    (uid,) = engine(compression_ramp(cell, det, 0.0, 30.0, 16))
    run = tiled_client[uid]
    assert set(run) == {"primary", INTEGRATED_STREAM}
    assert run.metadata["stop"]["num_events"] == {"primary": 16, INTEGRATED_STREAM: 16}
    image = run["primary"]["det_image"]
    (source,) = image.data_sources()
    assert source.management == "external" and source.mimetype == "application/x-hdf5"
    path = uri_path(source.assets[0].data_uri)
    assert path.startswith(str(tiled_server.frames))
    assert not list((tiled_server.directory / "data").rglob("*det_image*"))  # not copied
    with h5py.File(path, "r") as h5:
        on_disk = h5[FRAMES_DATASET][:]
    assert image.shape == (16, *SMALL.shape) and image.dtype == np.uint32
    np.testing.assert_array_equal(image[7], on_disk[7])
    ds = run_to_dataset(run, stream=INTEGRATED_STREAM)
    assert ds.sizes["curve"] == 16 and ds.attrs["energy"] == pytest.approx(SMALL.energy_kev)
    # the stored curves are the integration of the stored frames, in order, with pressures
    fresh = FrameIntegrator(det.poni.get(), det.mask_file.get())
    np.testing.assert_allclose(ds["intensity"].values[7], fresh.integrate(on_disk[7]),
                               rtol=1e-5)
    primary = run["primary"].base["internal"].read()
    np.testing.assert_allclose(ds["pressure"], primary["pressure"])
    assert (ds["label"].values == 2).any() and (ds["label"].values == 0).any()
    live = collector.dataset(uid)
    np.testing.assert_allclose(live["intensity"].values, ds["intensity"].values)
    labels = monitor.labels(uid)
    assert len(labels) == 16 and len(router.latency) == 16
    assert (labels == ds["label"].values).mean() > 0.6  # a small test model, real labels


def test_area_demo_command_end_to_end(tiled_server, tiled_client, mlflow_store, cli):
    out = cli(["ingest-demo", "--tiled-uri", tiled_server.api_uri, "--api-key",
               tiled_server.api_key, "--detector", "area", "--frames",
               str(tiled_server.frames), "--pixels", "192", "--runs", "1", "--curves", "9",
               "--model", mlflow_store.champion])
    uid = out.strip().splitlines()[-1]
    assert "9 curves labelled live" in out and "frame → curve" in out
    assert run_to_dataset(tiled_client[uid], stream=INTEGRATED_STREAM).sizes["curve"] == 9
    usage = cli(["ingest-demo", "--tiled-uri", tiled_server.api_uri, "--detector", "area"],
                exit_code=2)
    assert "--frames" in usage


def test_bad_geometry_and_mask_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.poni"
    junk.write_text("this is not a geometry\n")
    with pytest.raises(ValueError, match="junk.poni: not a"):
        FrameIntegrator(junk)
    integrator = FrameIntegrator(SMALL.integrator(), np.zeros((10, 10), np.int8))
    with pytest.raises(ValueError, match="mask is"):
        integrator.integrate(np.ones(SMALL.shape))
    table = tmp_path / "p.csv"
    table.write_text("pressure\n1.0\nabc\n")
    with pytest.raises(ValueError, match="non-numeric pressure in rows \\[2\\]"):
        integrate_files(SMALL.write_poni(tmp_path / "ok.poni"), [tmp_path / "x.tif"], table)


def _frames_run(tmp_path, geometry, name, simulator, first_event_then_datum=True):
    """Documents of one frames run written by hand: the frames key plus a 1-D external
    'stats' key of the same detector, one event arriving before its StreamDatum."""
    from event_model import ComposeStreamResource, compose_run

    from specflow.ingest.frames import file_uri
    from specflow.simulator.detector import FrameFile

    renderer = FrameRenderer(geometry, simulator.two_theta, counts=20.0, seed=4)
    frames = [renderer.render(simulator.curves(np.array([p]))[0]) for p in (2.0, 9.0, 20.0)]
    h5 = FrameFile(tmp_path / f"{name}.h5", geometry.shape)
    for frame in frames:
        h5.append(frame)
    h5.close()
    poni = geometry.write_poni(tmp_path / f"{name}.poni")
    run = compose_run(metadata={"sample": name})
    desc = run.compose_descriptor(
        name="primary", validate=False,
        data_keys={"det_image": {"dtype": "array", "dtype_numpy": "<u4", "source": "s",
                                 "shape": list(geometry.shape), "external": "STREAM:"},
                   "det_stats": {"dtype": "array", "dtype_numpy": "<f8", "source": "s",
                                 "shape": [4], "external": "STREAM:"},
                   "pressure": {"dtype": "number", "shape": [], "source": "s"}},
        object_keys={"det": ["det_image", "det_stats"], "pressure": ["pressure"]},
        configuration={"det": {"data": {"det_poni": str(poni), "det_mask_file": ""},
                               "timestamps": {}, "data_keys": {}}})
    images = ComposeStreamResource()("application/x-hdf5", file_uri(h5.path), "det_image",
                                     {"dataset": FRAMES_DATASET})
    stats = ComposeStreamResource()("application/x-hdf5", file_uri(h5.path), "det_stats",
                                    {"dataset": "/entry/stats"})
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc),
            ("stream_resource", images.stream_resource_doc),
            ("stream_resource", stats.stream_resource_doc)]
    for i in range(3):
        rng = ({"start": i, "stop": i + 1}, {"start": i + 1, "stop": i + 2})
        datums = [("stream_datum", images.compose_stream_datum(*rng, desc.descriptor_doc)),
                  ("stream_datum", stats.compose_stream_datum(*rng, desc.descriptor_doc))]
        event = ("event", desc.compose_event(data={"pressure": 1.0 + i},
                                             timestamps={"pressure": 0.0}, seq_num=i + 1,
                                             validate=False))
        docs += [event, *datums] if i == 1 and first_event_then_datum else [*datums, event]
    docs.append(("stop", run.compose_stop()))
    return docs, frames, poni


def test_router_keys_frames_by_data_key_waits_for_late_datums_and_rereads_geometry(
        tmp_path, simulator):
    out: list[tuple[str, dict]] = []
    router = IntegratingRouter(lambda name, doc: out.append((name, doc)))
    other = DetectorGeometry(shape=(200, 240), pixel_size=300e-6, beam_center=(100.0, 40.0),
                             distance=0.12)
    for geometry, name in ((SMALL, "a"), (other, "b")):
        docs, frames, poni = _frames_run(tmp_path, geometry, name, simulator)
        before = len(out)
        for doc in docs:
            router(*doc)
        mine = out[before:]
        assert [n for n, _ in mine].count("event") == 6  # 3 frame events + 3 curves
        curves = [d for n, d in mine if n == "event" and "det_curve" in d["data"]]
        expected = FrameIntegrator(poni)
        for frame, event in zip(frames, curves, strict=True):
            np.testing.assert_allclose(event["data"]["det_curve"],
                                       expected.integrate(frame), rtol=1e-5)
        (desc,) = [d for n, d in mine if n == "descriptor" and d["name"] == INTEGRATED_STREAM]
        grid = desc["configuration"]["det"]["data"]["det_two_theta"]
        np.testing.assert_allclose(grid, expected.two_theta)  # this run's own geometry
        assert mine[-1][0] == "stop" and not router.problems
        assert mine[-1][1]["num_events"][INTEGRATED_STREAM] == 3
