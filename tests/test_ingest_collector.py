"""SpectraCollector: event/event_page accumulation, streams, runs, and every bad-document path."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

from specflow.data.schema import validate
from specflow.ingest import SpectraCollector, collect


def feed(collector: SpectraCollector, docs) -> SpectraCollector:
    for name, doc in docs:
        collector(name, doc)
    return collector


@pytest.mark.parametrize("page_size", [None, 1, 7, 50])
def test_events_and_pages_accumulate_exactly(make_docs, page_size):
    docs, intensity, pressure = make_docs(23, page_size=page_size)
    collector = feed(SpectraCollector(initial_capacity=2), docs)  # forces several doublings
    ds = validate(collector.dataset())
    assert ds["intensity"].dtype == np.float32
    np.testing.assert_array_equal(ds["intensity"].values, intensity)
    np.testing.assert_array_equal(ds["pressure"].values, pressure)
    np.testing.assert_array_equal(ds["two_theta"].values, np.linspace(5.0, 25.0, 4000))
    np.testing.assert_array_equal(ds["seq_num"].values, np.arange(1, 24))
    assert ds.attrs["run_uid"] == docs[0][1]["uid"]
    assert ds.attrs["sample"] == "Fe-1"
    assert ds.attrs["energy"] == 25.6
    assert ds.attrs["complete"] is True
    assert collector.problems == []


def test_buffer_grows_by_doubling_not_per_event(make_docs):
    docs, _, _ = make_docs(100, page_size=10)
    collector = SpectraCollector(initial_capacity=4)
    capacities = []
    for name, doc in docs:
        collector(name, doc)
        if name == "event_page":
            capacities.append(collector._stream(docs[0][1]["uid"], None).buffer.capacity)
    assert capacities == [10, 20, 40, 40, 80, 80, 80, 80, 160, 160]


def test_json_lists_are_accepted(make_docs):
    docs, intensity, _ = make_docs(5, page_size=5)
    page = docs[2][1]
    page["data"]["xrd_spectrum"] = [row.tolist() for row in page["data"]["xrd_spectrum"]]
    collector = feed(SpectraCollector(), docs)
    np.testing.assert_array_equal(collector.dataset()["intensity"].values, intensity)


def test_on_update_reports_new_slices_and_survives_failing_callbacks(make_docs, caplog):
    docs, intensity, _ = make_docs(12, page_size=4)
    collector = SpectraCollector()
    seen = []

    @collector.on_update
    def record(update):
        seen.append((update.start, update.stop, update.intensity.copy(),
                     update.dataset.sizes["curve"]))

    collector.on_update(lambda update: 1 / 0)
    with caplog.at_level(logging.ERROR):
        feed(collector, docs)
    assert [(a, b, n) for a, b, _, n in seen] == [(0, 4, 4), (4, 8, 8), (8, 12, 12)]
    np.testing.assert_array_equal(seen[1][2], intensity[4:8])
    assert "on_update callback failed" in caplog.text


def test_several_runs_and_stream_filter(make_docs):
    run_a, int_a, _ = make_docs(6, page_size=3, seed=1)
    run_b, int_b, _ = make_docs(4, seed=2)
    base, int_c, _ = make_docs(2, stream="baseline", seed=3)
    collector = feed(SpectraCollector(), [*run_a, *base, *run_b])
    uid_a, uid_b = run_a[0][1]["uid"], run_b[0][1]["uid"]
    assert set(collector.datasets) == {uid_a, uid_b}
    assert collector.dataset().attrs["run_uid"] == uid_b  # latest
    np.testing.assert_array_equal(collector.dataset(uid_a)["intensity"].values, int_a)
    np.testing.assert_array_equal(collector.datasets[uid_b]["intensity"].values, int_b)
    assert collector.problems == []  # a filtered stream is not a problem

    every = feed(SpectraCollector(streams=None), base)
    uid_c = base[0][1]["uid"]
    np.testing.assert_array_equal(every.dataset(uid_c, "baseline")["intensity"].values, int_c)
    with pytest.raises(LookupError):
        every.dataset(uid_c, "primary")


def test_bad_documents_are_reported_and_good_events_kept(make_docs, caplog):
    docs, intensity, pressure = make_docs(10, page_size=10)
    page = copy.copy(docs[2][1])
    data = {k: list(v) for k, v in page["data"].items()}
    data["xrd_spectrum"][1] = intensity[1][:3999]  # wrong length
    nan_row = intensity[3].copy()
    nan_row[100] = np.nan
    data["xrd_spectrum"][3] = nan_row  # NaN
    data["xrd_spectrum"][4] = None  # missing spectrum
    data["pressure"][6] = None  # missing pressure
    data["pressure"][7] = float("nan")
    page["data"] = data
    docs[2] = ("event_page", page)
    collector = SpectraCollector()
    with caplog.at_level(logging.WARNING, logger="specflow.ingest.callback"):
        feed(collector, docs)
    good = [0, 2, 5, 8, 9]
    ds = validate(collector.dataset())
    np.testing.assert_array_equal(ds["intensity"].values, intensity[good])
    np.testing.assert_array_equal(ds["pressure"].values, pressure[good])
    np.testing.assert_array_equal(ds["seq_num"].values, np.array(good) + 1)
    by_seq = {p.seq_num: p.reason for p in collector.problems}
    assert set(by_seq) == {2, 4, 5, 7, 8}
    assert "shape (3999,)" in by_seq[2]
    assert "NaN" in by_seq[4]
    assert "missing" in by_seq[5]
    assert "missing pressure" in by_seq[7] and "missing pressure" in by_seq[8]
    assert all(p.run_uid == docs[0][1]["uid"] for p in collector.problems)
    assert "dropped" in caplog.text


def test_single_bad_events_and_missing_pressure_key(make_docs):
    docs, intensity, _ = make_docs(4)
    events = [doc for name, doc in docs if name == "event"]
    del events[1]["data"]["pressure"]
    events[2]["data"]["xrd_spectrum"] = np.ones(10, dtype=np.float32)
    collector = feed(SpectraCollector(), docs)
    np.testing.assert_array_equal(collector.dataset()["intensity"].values, intensity[[0, 3]])
    assert [(p.seq_num, p.reason.split(" ")[0]) for p in collector.problems] == [
        (2, "missing"), (3, "spectrum")]


def test_event_before_descriptor_and_unknown_descriptor(make_docs):
    docs, intensity, _ = make_docs(3)
    start, desc, *events, stop = docs
    collector = SpectraCollector()
    collector(*start)
    collector(*events[0])  # before its descriptor
    collector(*desc)
    stranger = dict(events[1][1], descriptor="not-a-descriptor", seq_num=99)
    collector("event", stranger)
    collector(*events[1])
    collector(*events[2])
    collector(*stop)
    reasons = {p.seq_num: p.reason for p in collector.problems}
    assert reasons[1].startswith("event before any descriptor")
    assert reasons[99].startswith("unknown descriptor not-a-descriptor")
    np.testing.assert_array_equal(collector.dataset()["intensity"].values, intensity[1:])


def test_descriptor_without_spectrum_or_pressure(make_docs):
    docs, _, _ = make_docs(3, page_size=3)
    no_pressure = copy.deepcopy(docs)
    for key in ("pressure", "pressure_setpoint"):
        del no_pressure[1][1]["data_keys"][key]
        del no_pressure[2][1]["data"][key]
    collector = feed(SpectraCollector(), no_pressure)
    reasons = [p.reason for p in collector.problems]
    assert reasons[0].startswith("missing pressure: stream 'primary' has no pressure data key")
    assert [p.seq_num for p in collector.problems[1:]] == [1, 2, 3]
    assert collector.datasets[docs[0][1]["uid"]].sizes["curve"] == 0

    no_spectrum = copy.deepcopy(docs)
    del no_spectrum[1][1]["data_keys"]["xrd_spectrum"]
    collector = feed(SpectraCollector(), no_spectrum)
    assert "skipped" in collector.problems[0].reason
    assert len(collector.problems) == 1  # its events are not reported one by one
    with pytest.raises(LookupError):
        collector.dataset()


def test_explicit_keys_and_missing_grid(make_docs):
    docs, intensity, pressure = make_docs(3, page_size=3)
    docs[1][1]["configuration"] = {}
    collector = feed(SpectraCollector(pressure_key="pressure_setpoint",
                                      spectrum_key="xrd_spectrum"), docs)
    ds = collector.dataset()
    np.testing.assert_array_equal(ds["two_theta"].values, np.arange(4000.0))
    np.testing.assert_array_equal(ds["pressure"].values, pressure)
    assert "no 2θ grid" in collector.problems[0].reason
    assert ds.attrs["pressure_key"] == "pressure_setpoint"


def test_garbage_documents_never_raise():
    collector = SpectraCollector()
    collector("event_page", {"descriptor": None})
    collector("descriptor", {"uid": "d", "name": "primary", "run_start": "r",
                             "data_keys": {"s": {"dtype": "array", "shape": ["x"]}}})
    collector("stop", {})
    reasons = [p.reason for p in collector.problems]  # reported, not raised
    assert reasons[0] == "descriptor before its start document"
    assert reasons[-1].startswith("internal error: ValueError")  # shape ["x"]


def test_collect_helper(make_docs):
    docs, intensity, _ = make_docs(5, page_size=2)
    np.testing.assert_array_equal(collect(docs).dataset()["intensity"].values, intensity)


def test_bad_events_inside_a_run_engine_never_raise(caplog):
    from bluesky import RunEngine

    from specflow.ingest import compression_ramp
    from specflow.simulator.devices import DiamondAnvilCell, IntegratedDetector
    from specflow.simulator.simulate import XRDSimulator

    class FlakyDetector(IntegratedDetector):
        """Every third curve has a dead pixel (NaN)."""

        def trigger(self):
            status = super().trigger()
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls % 3 == 0:
                curve = self.spectrum.get().copy()
                curve[7] = np.nan
                self.spectrum.put(curve)
            return status

    engine = RunEngine({})
    collector = SpectraCollector()
    engine.subscribe(collector)
    cell = DiamondAnvilCell()
    det = FlakyDetector(name="xrd", cell=cell, simulator=XRDSimulator("Fe", seed=0))
    with caplog.at_level(logging.WARNING):
        (uid,) = engine(compression_ramp(cell, det, 0.0, 9.0, 9))
    ds = collector.dataset(uid)
    np.testing.assert_array_equal(ds["seq_num"].values, [1, 2, 4, 5, 7, 8])
    assert [p.seq_num for p in collector.problems] == [3, 6, 9]
    assert all("NaN" in p.reason for p in collector.problems)


def test_pages_of_numpy_columns(make_docs):
    docs, intensity, pressure = make_docs(6, page_size=6)
    page = docs[2][1]
    page["data"] = {k: np.asarray(v) for k, v in page["data"].items()}
    page["seq_num"], page["time"] = np.arange(1, 7), np.asarray(page["time"])
    ds = feed(SpectraCollector(), docs).dataset()
    np.testing.assert_array_equal(ds["intensity"].values, intensity)
    np.testing.assert_array_equal(ds["pressure"].values, pressure)
