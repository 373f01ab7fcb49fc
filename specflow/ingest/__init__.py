"""Ingest: simulated beamline, Bluesky plans, Tiled persistence and live collection.

The names below are imported on first use, so that reading a run does not pull in the
simulated beamline (torch, pymatgen).
"""

from importlib import import_module

_EXPORTS = {
    "Problem": "callback", "SpectraCollector": "callback", "SpectraUpdate": "callback",
    "collect": "callback",
    "TILED_BATCH_SIZE": "compressions", "record_compressions": "compressions",
    "DiamondAnvilCell": "devices", "IntegratedDetector": "devices",
    "SpectrumSignal": "devices",
    "compression_ramp": "plans", "pressure_path": "plans",
    "run_to_dataset": "reader",
    "TiledServerInfo": "server", "tiled_server": "server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
