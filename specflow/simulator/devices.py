"""Simulated beamline hardware: a diamond-anvil-cell pressure controller and a detector
whose reading is one azimuthally integrated diffraction curve (intensity vs 2θ)."""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.sim import SynAxis
from ophyd.status import Status

from specflow.simulator.simulate import DEFAULT_ENERGY_KEV, XRDSimulator


class Simulator(Protocol):
    """What the detector needs from :class:`specflow.simulator.simulate.XRDSimulator`."""

    two_theta: np.ndarray

    def curves(self, pressure: np.ndarray, phase_fraction: np.ndarray | None = None
               ) -> np.ndarray: ...

    def phase_fraction(self, pressure_path: np.ndarray) -> np.ndarray: ...


class DiamondAnvilCell(SynAxis):
    """Pressure controller of a diamond-anvil cell (GPa), movable by Bluesky plans.

    Reading gives ``<name>`` (readback) and ``<name>_setpoint``. The readback lands near,
    not at, the setpoint (Gaussian scatter ``settle_sigma``). A move takes
    ``|Δp| / ramp_rate * time_scale`` seconds of real time; ``time_scale=0`` (default)
    makes moves instant for simulation. Every readback value is kept in
    :attr:`pressure_history`, the path the sample has seen (it drives hysteresis).
    """

    ramp_rate = Cpt(Signal, value=1.0, kind="config")

    def __init__(
        self,
        *,
        name: str = "pressure",
        value: float = 0.0,
        ramp_rate: float = 1.0,
        settle_sigma: float = 0.02,
        time_scale: float = 0.0,
        seed: int | None = 0,
        **kwargs: Any,
    ) -> None:
        rng = np.random.default_rng(seed)
        history: list[float] = []

        def readback(setpoint: float) -> float:
            p = float(setpoint) + (float(rng.normal(0.0, settle_sigma)) if settle_sigma else 0.0)
            history.append(p)
            return p

        self.pressure_history = history
        self.time_scale = float(time_scale)
        super().__init__(name=name, readback_func=readback, value=float(value), egu="GPa",
                         **kwargs)
        self.ramp_rate.put(float(ramp_rate))

    def set(self, value: float) -> Any:  # MoveStatus
        """Ramp to ``value`` GPa; the status finishes when the readback has settled."""
        distance = abs(float(value) - float(self.sim_state["setpoint"]))
        rate = float(self.ramp_rate.get())
        self.delay = distance / rate * self.time_scale if rate > 0 and self.time_scale else 0
        self._events_per_move = max(1, math.ceil(distance / 0.5)) if self.delay else 1
        return super().set(float(value))

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        for key in desc.values():
            key["units"] = "GPa"
        return desc


class SpectrumSignal(Signal):
    """Holds the latest curve; describes itself as a float32 1-D array before any trigger."""

    def __init__(self, *args: Any, n_points: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n_points = n_points

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        desc[self.name].update(
            dtype="array", shape=[self.n_points], dtype_numpy="<f4", dims=["two_theta"],
            units="counts",
        )
        desc[self.name].pop("precision", None)
        return desc


class FractionSignal(Signal):
    """A scalar in [0, 1]; describes itself as a number with units ``fraction``."""

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        desc[self.name].update(dtype="number", shape=[], units="fraction")
        return desc


class IntegratedDetector(Device):
    """An area detector plus azimuthal integration, reduced to its product: one curve.

    ``trigger()`` simulates the curve at the cell's current readback pressure (with the
    high-pressure phase fraction of the path so far, so decompression shows hysteresis).
    The 2θ grid (degrees) and photon energy (keV) are configuration, recorded once per
    stream in the descriptor. With a ``simulator`` given, material and energy default to its.

    ``phase_fraction`` is **simulation ground truth**, not a measurement: the high-pressure
    phase fraction the simulator used for each curve, recorded beside it (data key
    ``<name>_phase_fraction``, units ``fraction``) so stored runs can be scored.
    """

    spectrum = Cpt(SpectrumSignal, value=0.0, kind="hinted")
    phase_fraction = Cpt(FractionSignal, value=0.0, kind="normal")
    two_theta = Cpt(Signal, value=None, kind="config")
    energy = Cpt(Signal, value=0.0, kind="config")

    def __init__(
        self,
        *,
        name: str = "xrd",
        cell: DiamondAnvilCell,
        simulator: Simulator | None = None,
        material: str = "Fe",
        energy_kev: float | None = None,
        seed: int | None = 0,
        **kwargs: Any,
    ) -> None:
        if simulator is None:

            energy_kev = DEFAULT_ENERGY_KEV if energy_kev is None else energy_kev
            simulator = XRDSimulator(material=material, energy_kev=energy_kev, seed=seed)
        else:  # take what the simulator knows
            material = getattr(getattr(simulator, "material", None), "name", material)
            if energy_kev is None:
                instrument = getattr(simulator, "instrument", None)
                energy_kev = float(getattr(instrument, "energy_kev", 25.6))
        super().__init__(name=name, **kwargs)
        self.cell = cell
        self.simulator = simulator
        self.material = material
        grid = np.asarray(simulator.two_theta, dtype=float)
        self.spectrum.n_points = grid.size
        self.spectrum.put(np.zeros(grid.size, dtype=np.float32))
        self.two_theta.put(grid)
        self.energy.put(float(energy_kev))

    def trigger(self) -> Status:
        """Acquire one curve at the present cell pressure; returns a finished status."""
        curve, fraction = pattern_at_cell(self.simulator, self.cell)
        self.spectrum.put(np.ascontiguousarray(curve, dtype=np.float32))
        self.phase_fraction.put(fraction)
        return finished(self)


def pattern_at_cell(simulator: Simulator, cell: DiamondAnvilCell) -> tuple[np.ndarray, float]:
    """The simulated pattern at the cell's present readback pressure, and its high-pressure
    phase fraction given the whole pressure path so far (decompression shows hysteresis)."""
    path = np.asarray(cell.pressure_history, dtype=float)
    pressure = float(cell.readback.get())
    if path.size == 0 or path[-1] != pressure:
        path = np.append(path, pressure)
    fraction = simulator.phase_fraction(path)[-1:]
    return simulator.curves(np.array([pressure]), phase_fraction=fraction)[0], float(fraction[0])


def finished(device: Device) -> Status:
    """A status already done: simulated acquisitions complete within ``trigger``."""
    status = Status(obj=device)
    status.set_finished()
    return status
