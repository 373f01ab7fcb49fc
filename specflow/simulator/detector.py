"""A simulated area detector at a diamond-anvil cell that writes its frames to HDF5.

:class:`AreaDetector` (ophyd) renders a frame per trigger (:mod:`specflow.simulator.area`),
appends it to an HDF5 file (:class:`FrameFile`) and announces it with
StreamResource/StreamDatum documents; its data key is ``external: "STREAM:"``, so
bluesky-tiled-plugins' TiledWriter registers the file in Tiled instead of copying the pixels
(the server must be allowed to read the folder). Production ingest integrates such frames
with :class:`~specflow.ingest.frames.IntegratingRouter`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fabio.edfimage
import h5py
import hdf5plugin
import numpy as np
from event_model import ComposeStreamResource
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import Status

from specflow.ingest.frames import HDF5_MIMETYPE, file_uri
from specflow.simulator.area import DetectorGeometry, FrameRenderer, detector_mask
from specflow.simulator.devices import DiamondAnvilCell, FractionSignal, finished, pattern_at_cell
from specflow.simulator.simulate import XRDSimulator

FRAMES_DATASET = "/entry/data/data"  # where Eiger-style files keep frames (fabio reads it)


class FrameFile:
    """An HDF5 file of frames (n, rows, cols) growing by one frame per :meth:`append`, in
    single-writer/multiple-reader mode so readers see each frame once it is flushed."""

    def __init__(self, path: Path, shape: tuple[int, int], dtype: str = "<u4",
                 compress: bool = True) -> None:
        self.path = path
        self.file = h5py.File(path, "w", libver="latest")
        # Bitshuffle-LZ4, as Dectris detectors write: ~7x smaller photon-count frames for
        # ~6 ms each (1 Mpixel); Tiled's HDF5 adapter loads the filter (hdf5plugin)
        options = dict(hdf5plugin.Bitshuffle(cname="lz4")) if compress else {}
        try:
            self.data = self.file.create_dataset(
                FRAMES_DATASET, shape=(0, *shape), maxshape=(None, *shape),
                chunks=(1, *shape), dtype=dtype, **options)
            self.file.swmr_mode = True
        except Exception:
            self.file.close()
            raise
        self.count = 0

    def append(self, frame: np.ndarray) -> int:
        """Write ``frame`` as the next one; returns its index."""
        self.data.resize(self.count + 1, axis=0)
        self.data[self.count] = frame
        self.data.flush()
        self.count += 1
        return self.count - 1

    def close(self) -> None:
        self.file.close()


class AreaDetector(Device):
    """A simulated 2-D detector at a diamond-anvil cell, writing frames to HDF5.

    Each ``trigger()`` simulates the 1-D pattern at the cell's readback pressure (with the
    phase fraction of the path so far), renders it as a frame through ``geometry`` and
    appends it to ``<directory>/<uuid>.h5`` (one file per run, opened at ``stage``). The frame
    is data key ``<name>_image`` (external, ``STREAM:``); the event holds only the ground-truth
    ``<name>_phase_fraction``. The geometry's ``.poni`` and the mask (``.edf``, non-zero =
    masked) are written beside the file; their paths and the energy are configuration.
    """

    phase_fraction = Cpt(FractionSignal, value=0.0, kind="normal")
    energy = Cpt(Signal, value=0.0, kind="config")
    poni = Cpt(Signal, value="", kind="config")
    mask_file = Cpt(Signal, value="", kind="config")

    def __init__(self, *, name: str = "det", cell: DiamondAnvilCell, directory: str | Path,
                 geometry: DetectorGeometry | None = None, material: str = "Fe",
                 sparkle: float = 0.3, counts: float = 0.05, seed: int | None = 0,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.cell = cell
        self.material = material
        self.geometry = geometry or DetectorGeometry()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.simulator = XRDSimulator(material=material, energy_kev=self.geometry.energy_kev,
                                      seed=seed)
        self.renderer = FrameRenderer(self.geometry, self.simulator.two_theta,
                                      mask=detector_mask(self.geometry), sparkle=sparkle,
                                      counts=counts, seed=seed)
        self.energy.put(float(self.geometry.energy_kev))
        self.image_key = f"{name}_image"
        self._file: FrameFile | None = None
        self._datum: Any = None
        self._assets: list[tuple[str, dict]] = []

    def stage(self) -> list[Any]:
        """Open this run's files: ``<uuid>.h5`` for the frames, with the geometry
        (``<uuid>.poni``) and mask (``<uuid>_mask.edf``) beside it, so a stored run keeps
        the calibration it was recorded with."""
        staged = super().stage()
        base = self.directory / str(uuid.uuid4())
        poni = self.geometry.write_poni(base.with_suffix(".poni"))
        mask = base.parent / f"{base.name}_mask.edf"
        fabio.edfimage.EdfImage(data=self.renderer.mask.astype(np.int8)).write(str(mask))
        self.poni.put(str(poni))
        self.mask_file.put(str(mask))
        path = base.with_suffix(".h5")
        self._file = FrameFile(path, self.geometry.shape)
        bundle = ComposeStreamResource()(
            HDF5_MIMETYPE, file_uri(path), self.image_key,
            {"dataset": FRAMES_DATASET, "chunk_shape": (1, *self.geometry.shape),
             "swmr": True})
        self._assets = [("stream_resource", bundle.stream_resource_doc)]
        self._datum = bundle.compose_stream_datum
        return staged

    def unstage(self) -> list[Any]:
        if self._file is not None:
            self._file.close()
            self._file = None
        return super().unstage()

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        desc[self.image_key] = {
            "source": "file", "dtype": "array", "dtype_numpy": "<u4",
            "shape": list(self.geometry.shape), "dims": ["row", "col"], "units": "counts",
            "external": "STREAM:"}
        return desc

    def trigger(self) -> Status:
        """Record one frame at the present cell pressure; returns a finished status."""
        if self._file is None:
            raise RuntimeError(f"{self.name} is not staged: frames need a run's HDF5 file")
        pattern, fraction = pattern_at_cell(self.simulator, self.cell)
        index = self._file.append(self.renderer.render(pattern))
        self._assets.append(("stream_datum", self._datum({"start": index, "stop": index + 1})))
        self.phase_fraction.put(fraction)
        return finished(self)

    def collect_asset_docs(self) -> Iterator[tuple[str, dict]]:
        """StreamResource (first frame of a run) and one StreamDatum per frame."""
        assets, self._assets = self._assets, []
        yield from assets


__all__ = ["FRAMES_DATASET", "AreaDetector", "FrameFile"]
