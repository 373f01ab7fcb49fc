"""Ingest: simulated beamline, Bluesky plans, Tiled persistence and live collection.

The names below are imported on first use, so that reading a run does not pull in the
simulated beamline (torch, pymatgen).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "callback": ["Problem", "SpectraCollector", "SpectraUpdate", "collect"],
    "compressions": ["TILED_BATCH_SIZE", "record_compressions"],
    "devices": ["DiamondAnvilCell", "IntegratedDetector", "SpectrumSignal"],
    "plans": ["compression_ramp", "pressure_path"],
    "reader": ["RunLayout", "run_to_dataset"],
    "server": ["TiledServerInfo", "tiled_server"],
})
