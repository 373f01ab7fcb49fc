"""Shared fixtures: one real, writable Tiled server per test session and document factories."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

N_POINTS = 4000


@pytest.fixture(scope="session")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Tiled server (SQLite catalog, zarr + DuckDB storage, API key) on 127.0.0.1."""
    from specflow.ingest.server import tiled_server as serve

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
