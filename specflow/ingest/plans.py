"""Bluesky plans for diamond-anvil-cell experiments."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from bluesky import plans as bp

from specflow.data.schema import energy_to_wavelength

if TYPE_CHECKING:
    from ophyd import Device


def pressure_path(
    start: float, stop: float, num: int, decompress_to: float | None = None,
    decompress_num: int | None = None,
) -> np.ndarray:
    """Setpoints (GPa): ``num`` points start→stop, then optionally stop→``decompress_to``."""
    path = np.linspace(start, stop, num)
    if decompress_to is not None:
        back = np.linspace(stop, decompress_to, (decompress_num or num) + 1)[1:]
        path = np.concatenate([path, back])
    return path


def compression_ramp(
    cell: Device,
    detector: Device,
    start: float,
    stop: float,
    num: int,
    *,
    md: Mapping[str, Any] | None = None,
    decompress_to: float | None = None,
    decompress_num: int | None = None,
    sample: str | None = None,
    description: str | None = None,
) -> Generator[Any, Any, str]:
    """Step the cell through a pressure ramp and take one curve per step.

    ``cell``: any ophyd positioner of the pressure (GPa); ``detector``: any device with an
    ``energy`` signal (keV) and a ``two_theta`` signal (its 1-D grid), real or simulated
    (:mod:`specflow.simulator.devices`).

    Each event holds the spectrum, the pressure readback and its setpoint. The start
    document carries sample, material, a human description, energy (keV), wavelength (Å)
    and the plan arguments; ``md`` entries override them.
    """
    path = pressure_path(start, stop, num, decompress_to, decompress_num)
    energy = float(detector.energy.get())
    material = getattr(detector, "material", None)
    simulator = getattr(detector, "simulator", None)  # the simulated patterns' 2θ range
    grid = np.asarray(simulator.two_theta if simulator is not None
                      else detector.two_theta.get(), dtype=float)
    if description is None:
        description = f"{material} in a diamond-anvil cell, compression {start:g}→{stop:g} GPa"
        if decompress_to is not None:
            description += f", decompression →{decompress_to:g} GPa"
        description += f" ({path.size} curves)"
    plan_args = {
        "cell": repr(cell), "detector": repr(detector), "start": start, "stop": stop,
        "num": num, "decompress_to": decompress_to, "decompress_num": decompress_num,
    }
    _md = {
        "plan_name": "compression_ramp",
        "plan_args": plan_args,
        "sample": sample or material,
        "material": material,
        "description": description,
        "energy": energy,
        "energy_units": "keV",
        "wavelength": energy_to_wavelength(energy),
        "two_theta_range": [float(grid[0]), float(grid[-1])],
        "num_points": int(path.size),
        "pressure_units": "GPa",
    }
    _md.update(md or {})
    return (yield from bp.list_scan([detector], cell, list(path), md=_md))
