"""A simulated area detector: 2-D frames with Debye–Scherrer rings, as a DAC beamline records.

:class:`DetectorGeometry` is the calibrated geometry (distance, beam centre, tilt, pixel size,
photon energy) as pyFAI's :class:`~pyFAI.integrator.azimuthal.AzimuthalIntegrator`, written to
and read from a ``.poni`` file. :class:`FrameRenderer` turns a simulated 1-D pattern into a
frame: rings through the geometry (pyFAI's ``calcfrom1d``, with solid angle and polarisation),
grain sparkle along the rings, a beamstop and module gaps (the :func:`detector_mask`), and
Poisson counting noise. :class:`~specflow.simulator.detector.AreaDetector` writes such frames
to HDF5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from specflow.data.schema import energy_to_wavelength
from specflow.ingest.integrate import POLARIZATION


@dataclass(frozen=True)
class DetectorGeometry:
    """Where the detector sits: ``shape`` (rows, cols) pixels of ``pixel_size`` m at
    ``distance`` m, its point of normal incidence (pyFAI's PONI; the beam centre when
    ``tilt`` is 0) at pixel ``beam_center`` (row, col), tilted by ``tilt`` (rad, about both
    axes), at ``energy_kev``. The default is a 1-Mpixel detector with 75 µm
    pixels 0.15 m behind a 25.6 keV sample, the beam near its left edge (as at DAC
    beamlines, to reach high angles): 2θ up to ~26°, the simulator's 5–25° range."""

    shape: tuple[int, int] = (1024, 1024)
    pixel_size: float = 75e-6
    distance: float = 0.15
    beam_center: tuple[float, float] = (512.0, 200.0)
    tilt: float = 0.005
    energy_kev: float = 25.6

    def integrator(self) -> AzimuthalIntegrator:
        """This geometry as a pyFAI integrator."""
        detector = Detector(pixel1=self.pixel_size, pixel2=self.pixel_size,
                            max_shape=self.shape)
        row, col = self.beam_center
        return AzimuthalIntegrator(
            dist=self.distance, poni1=(row + 0.5) * self.pixel_size,
            poni2=(col + 0.5) * self.pixel_size, rot1=self.tilt, rot2=self.tilt, rot3=0.0,
            detector=detector, wavelength=energy_to_wavelength(self.energy_kev) * 1e-10)

    @classmethod
    def square(cls, pixels: int) -> DetectorGeometry:
        """The default detector's field of view on ``pixels`` × ``pixels`` larger pixels
        (1024: the default itself)."""
        scale = pixels / 1024
        return cls(shape=(pixels, pixels), pixel_size=75e-6 / scale,
                   beam_center=(512.0 * scale, 200.0 * scale))

    def write_poni(self, path: str | Path) -> Path:
        """Write the geometry as a pyFAI ``.poni`` file (replacing any file there)."""
        path = Path(path)
        path.unlink(missing_ok=True)  # pyFAI appends to an existing file
        self.integrator().write(str(path))
        return path

    def two_theta_range(self) -> tuple[float, float]:
        """Smallest and largest 2θ (deg) of the detector's pixel centres."""
        tth = self.integrator().center_array(self.shape, unit="2th_deg")
        return float(tth.min()), float(tth.max())


def detector_mask(geometry: DetectorGeometry, beamstop_radius: int = 40,
                  module: tuple[int, int] = (256, 256), gap: int = 6) -> np.ndarray:
    """Pixels without data (pyFAI convention: non-zero = masked), int8: a round beamstop on
    the beam centre with its holding arm to the left edge, and gaps of ``gap`` pixels
    between detector modules of ``module`` pixels."""
    rows, cols = geometry.shape
    y, x = np.ogrid[:rows, :cols]
    cy, cx = geometry.beam_center
    mask = (y - cy) ** 2 + (x - cx) ** 2 <= beamstop_radius ** 2
    mask |= (np.abs(y - cy) <= beamstop_radius // 4) & (x <= cx)
    for start in range(module[0], rows, module[0] + gap):
        mask[start:start + gap, :] = True
    for start in range(module[1], cols, module[1] + gap):
        mask[:, start:start + gap] = True
    return mask.astype(np.int8)


class FrameRenderer:
    """Renders 1-D patterns on a 2θ grid (deg) as detector frames of photon counts.

    ``sparkle``: log-normal spread of the grain texture along the rings (a coarse-grained
    sample's spotty rings; 0 = a perfect powder), fixed for the renderer (the same grains
    throughout a run). ``counts``: mean photons per pixel for a pattern value of 1. Masked
    pixels read 0.
    """

    def __init__(self, geometry: DetectorGeometry, two_theta: np.ndarray, *,
                 mask: np.ndarray | None = None, sparkle: float = 0.3, counts: float = 1.0,
                 seed: int | None = 0) -> None:
        self.geometry = geometry
        self.integrator = geometry.integrator()
        self.two_theta = np.asarray(two_theta, dtype=float)
        self.mask = detector_mask(geometry) if mask is None else np.asarray(mask, np.int8)
        self.rng = np.random.default_rng(seed)
        self.counts = float(counts)
        shape = geometry.shape
        tth = self.integrator.center_array(shape, unit="2th_deg")
        texture = np.exp(sparkle * self.rng.standard_normal(shape) - sparkle ** 2 / 2)
        # solid angle and polarisation (pyFAI's own arrays) times the grains, masked
        weight = (self.integrator.solidAngleArray(shape)
                  * self.integrator.polarization(shape, POLARIZATION) * texture)
        weight[self.mask != 0] = 0.0
        weight[(tth < self.two_theta[0]) | (tth > self.two_theta[-1])] = 0.0  # beyond pattern
        self._tth, self._weight = tth.astype(np.float64), weight.astype(np.float64)

    def expected(self, pattern: np.ndarray) -> np.ndarray:
        """Mean counts per pixel of one pattern (float64, before noise)."""
        pattern = np.asarray(pattern, dtype=float)
        if pattern.shape != self.two_theta.shape:
            raise ValueError(f"a pattern of {pattern.shape} on a 2θ grid of "
                             f"{self.two_theta.shape}")
        return np.interp(self._tth, self.two_theta, pattern) * self._weight * self.counts

    def render(self, pattern: np.ndarray) -> np.ndarray:
        """One frame (uint32 counts) of ``pattern`` with Poisson noise."""
        lam = np.clip(self.expected(pattern), 0.0, None)
        return self.rng.poisson(lam).astype(np.uint32)


__all__ = ["POLARIZATION", "DetectorGeometry", "FrameRenderer", "detector_mask"]
