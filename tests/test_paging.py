"""Documents to TiledWriter in pages (specflow.ingest.paging): on a real Tiled server the
paged writer stores the same rows and frames as TiledWriter fed document by document."""

from __future__ import annotations

import uuid

import h5py
import numpy as np
import pytest
from bluesky_tiled_plugins import TiledWriter

from specflow.ingest.frames import file_uri
from specflow.ingest.paging import EventPager, PagedRunNormalizer, paged_writer

N_FRAMES, SHAPE = 23, (6, 5)


def _frames_docs(path, step: bool = True) -> list[tuple[str, dict]]:
    """A frames run in ``path`` (external HDF5): a StreamDatum and an event per frame (step
    scan), or StreamDatums and event pages of 5 frames (fly scan); plus a baseline stream."""
    from event_model import ComposeStreamResource, compose_run

    with h5py.File(path, "w") as h5:
        h5["/entry/data/data"] = np.arange(N_FRAMES * SHAPE[0] * SHAPE[1],
                                           dtype="<u4").reshape(N_FRAMES, *SHAPE)
    run = compose_run(metadata={"sample": f"paging {uuid.uuid4().hex[:6]}"})
    desc = run.compose_descriptor(
        name="primary", validate=False,
        data_keys={"det_image": {"dtype": "array", "dtype_numpy": "<u4", "source": "s",
                                 "shape": list(SHAPE), "external": "STREAM:"},
                   "pressure": {"dtype": "number", "shape": [], "source": "s"}})
    base = run.compose_descriptor(
        name="baseline", validate=False,
        data_keys={"temperature": {"dtype": "number", "shape": [], "source": "s"}})
    images = ComposeStreamResource(start=run.start_doc)(
        "application/x-hdf5", file_uri(path), "det_image",
        {"dataset": "/entry/data/data", "chunk_shape": (1, *SHAPE)})
    now = 1.8e9  # the same times in both runs, so the stored tables can be compared
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc),
            ("descriptor", base.descriptor_doc),
            ("event", base.compose_event(data={"temperature": 300.0},
                                         timestamps={"temperature": now}, seq_num=1,
                                         validate=False)),
            ("stream_resource", images.stream_resource_doc)]
    block = 1 if step else 5
    for i in range(0, N_FRAMES, block):
        k = min(block, N_FRAMES - i)
        docs.append(("stream_datum", images.compose_stream_datum(
            {"start": i, "stop": i + k}, {"start": i + 1, "stop": i + k + 1},
            desc.descriptor_doc)))
        pressures = [0.5 * j for j in range(i, i + k)]
        if step:
            docs.append(("event", desc.compose_event(
                data={"pressure": pressures[0]}, timestamps={"pressure": now},
                seq_num=i + 1, time=now + i, validate=False)))
        else:
            docs.append(("event_page", desc.compose_event_page(
                data={"pressure": pressures}, timestamps={"pressure": [now] * k},
                seq_num=list(range(i + 1, i + k + 1)), time=[now + j for j in range(i, i + k)],
                validate=False)))
    docs.append(("event", base.compose_event(data={"temperature": 301.0},
                                             timestamps={"temperature": now}, seq_num=2,
                                             validate=False)))
    docs.append(("stop", run.compose_stop()))
    return docs


def _stored(client, uid: str) -> dict[str, np.ndarray]:
    run = client[uid]
    table = run["primary"].read()
    return {"frames": run["primary"]["det_image"].read(),
            "pressure": np.asarray(table["pressure"]), "time": np.asarray(table["time"]),
            "temperature": np.asarray(run["baseline"].read()["temperature"])}


@pytest.mark.parametrize("step", [True, False], ids=["step scan", "fly scan"])
def test_paged_writer_stores_the_same_run_as_tiledwriter(tiled_client, tiled_server, step):
    stored = {}
    for name, writer in (("plain", TiledWriter(tiled_client, batch_size=7)),
                         ("paged", paged_writer(tiled_client, 7))):
        docs = _frames_docs(tiled_server.frames / f"paging-{name}-{step}.h5", step)
        for doc in docs:
            writer(*doc)
        stored[name] = _stored(tiled_client, docs[0][1]["uid"])
    plain, paged = stored["plain"], stored["paged"]
    assert paged["frames"].shape == (N_FRAMES, *SHAPE)
    for key in plain:
        np.testing.assert_array_equal(paged[key], plain[key], err_msg=key)
    np.testing.assert_array_equal(paged["pressure"], 0.5 * np.arange(N_FRAMES))
    np.testing.assert_array_equal(paged["temperature"], [300.0, 301.0])


def test_pager_hands_on_merged_datums_then_pages_every_size_events_and_before_other_docs(
        tmp_path):
    out: list[tuple[str, dict]] = []
    docs = _frames_docs(tmp_path / "f.h5")
    pager = EventPager(lambda name, doc: out.append((name, doc)), size=10)
    for doc in docs:
        pager(*doc)
    names = [n for n, _ in out]
    assert "event" not in names
    # the baseline event goes on before the stream resource; then 10 events a page, and
    # what is left (3 frames' events, the closing baseline event) before the stop
    pages = [d for n, d in out if n == "event_page"]
    assert [len(p["seq_num"]) for p in pages] == [1, 10, 10, 3, 1]
    datums = [d for n, d in out if n == "stream_datum"]
    covered = [(d["indices"]["start"], d["indices"]["stop"]) for d in datums]
    assert covered[0][0] == 0 and covered[-1][1] == N_FRAMES
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False))
    assert len(datums) < N_FRAMES  # merged
    # every page comes after the StreamDatums of its frames
    seen = 0
    for name, doc in out:
        if name == "stream_datum":
            seen = doc["indices"]["stop"]
        elif name == "event_page" and "pressure" in doc["data"]:
            assert max(doc["seq_num"]) <= seen
    assert names[-1] == "stop" and names[0] == "start"


def _datum(start: int, stop: int, resource: str = "r", descriptor: str = "x") -> dict:
    return {"uid": f"{resource}{descriptor}{start}", "stream_resource": resource,
            "descriptor": descriptor, "indices": {"start": start, "stop": stop},
            "seq_nums": {"start": start + 1, "stop": stop + 1}}


def _event(seq: int, descriptor: str = "x", key: str = "p") -> dict:
    return {"uid": f"e{descriptor}{seq}", "descriptor": descriptor, "seq_num": seq,
            "time": float(seq), "data": {key: float(seq)}, "timestamps": {key: 0.0},
            "filled": {}}


def test_pager_merges_only_consecutive_datums_of_one_resource_and_descriptor():
    out: list[tuple[str, dict]] = []
    pager = EventPager(lambda name, doc: out.append((name, doc)), size=100)
    for doc in (_datum(0, 2), _datum(2, 3), _datum(5, 6), _datum(0, 4, descriptor="y"),
                _datum(6, 8)):
        pager("stream_datum", doc)
    pager.flush()
    got = sorted((d["descriptor"], d["indices"]["start"], d["indices"]["stop"]) for _, d in out)
    assert got == [("x", 0, 3), ("x", 5, 8), ("y", 0, 4)]
    with pytest.raises(ValueError, match="page size"):
        EventPager(print, 0)


def test_pager_hands_on_a_stream_when_the_writer_would_write_it():
    """Datums alone (a fly scan without events) go on once they cover ``size`` frames;
    events after a flush go on when, with the rows handed on before, they make ``size``."""
    out: list[tuple[str, dict]] = []
    pager = EventPager(lambda name, doc: out.append((name, doc)), size=4)
    for i in range(9):
        pager("stream_datum", _datum(i, i + 1))
    assert [(d["indices"]["start"], d["indices"]["stop"]) for _, d in out] == [(0, 4), (4, 8)]
    out.clear()
    for seq in range(1, 3):
        pager("event", _event(seq))
    pager("descriptor", {"uid": "y"})  # hands on what is held: 2 rows the writer keeps
    for seq in range(3, 5):
        pager("event", _event(seq))
    pages = [d for n, d in out if n == "event_page"]
    assert [p["seq_num"] for p in pages] == [[1, 2], [3, 4]]  # the writer's 4th row: written


def test_pager_starts_a_new_page_when_the_keys_change_and_keeps_what_it_could_not_hand_on():
    out: list[tuple[str, dict]] = []
    pager = EventPager(lambda name, doc: out.append((name, doc)), size=10)
    for doc in (_event(1), _event(2), _event(3, key="q"), _event(4, key="q")):
        pager("event", doc)
    pager.flush()
    assert [(list(d["data"]), d["seq_num"]) for _, d in out] == [(["p"], [1, 2]),
                                                                 (["q"], [3, 4])]

    def refuse(name, doc):
        raise ConnectionError("server away")

    pager = EventPager(refuse, size=10)
    pager("event", _event(1))
    with pytest.raises(ConnectionError):
        pager("stop", {})
    pager.downstream = lambda name, doc: out.append((name, doc))
    out.clear()
    pager.flush()
    assert [d["seq_num"] for _, d in out] == [[1]]  # still held, handed on now


def _normalized(docs) -> list[tuple[str, dict]]:
    """What a fresh PagedRunNormalizer hands on for ``docs``."""
    out: list[tuple[str, dict]] = []
    normalizer = PagedRunNormalizer(patches={}, spec_to_mimetype={})
    normalizer.subscribe(lambda name, doc: out.append((name, doc)))
    for doc in docs:
        normalizer(*doc)
    return out


def _one_page_run(data_keys: dict, **page) -> list[tuple[str, dict]]:
    """Start, descriptor and one event page of two events."""
    from event_model import compose_run

    run = compose_run()
    desc = run.compose_descriptor(name="primary", validate=False, data_keys=data_keys)
    return [("start", run.start_doc), ("descriptor", desc.descriptor_doc),
            ("event_page", desc.compose_event_page(seq_num=[1, 2], time=[0.0, 1.0],
                                                   validate=False, **page))]


def test_normalizer_keeps_plain_pages_whole_and_renames_reserved_keys_event_by_event(
        make_docs):
    docs, _, _ = make_docs(6, n_points=8, page_size=3)
    out = _normalized(docs)
    assert [n for n, _ in out].count("event_page") == 2
    assert [n for n, _ in out].count("event") == 0

    out = _normalized(_one_page_run(
        {"time": {"dtype": "number", "shape": [], "source": "s"}},
        data={"time": [1.0, 2.0]}, timestamps={"time": [0, 0]}))
    events = [d for n, d in out if n == "event"]
    assert [e["data"] for e in events] == [{"time_": 1.0}, {"time_": 2.0}]

    # a key with external (Datum) references: event by event, the reference split off
    out = _normalized(_one_page_run(
        {"det": {"dtype": "array", "shape": [2, 2], "source": "s", "external": "FILESTORE:"},
         "p": {"dtype": "number", "shape": [], "source": "s"}},
        data={"det": ["d1", "d2"], "p": [1.0, 2.0]}, timestamps={"det": [0, 0], "p": [0, 0]},
        filled={"det": [False, False]}))
    assert [n for n, _ in out].count("event_page") == 0
    assert [d["data"] for n, d in out if n == "event"] == [{"p": 1.0}, {"p": 2.0}]
