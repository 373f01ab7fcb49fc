"""Ingest: simulated beamline, Bluesky plans, Tiled persistence and live collection."""

from .callback import Problem, SpectraCollector, SpectraUpdate, collect
from .compressions import TILED_BATCH_SIZE, record_compressions
from .devices import DiamondAnvilCell, IntegratedDetector, SpectrumSignal
from .plans import compression_ramp, pressure_path
from .reader import run_to_dataset
from .server import TiledServerInfo, tiled_server

__all__ = [
    "TILED_BATCH_SIZE",
    "DiamondAnvilCell",
    "IntegratedDetector",
    "Problem",
    "SpectraCollector",
    "SpectraUpdate",
    "SpectrumSignal",
    "TiledServerInfo",
    "collect",
    "compression_ramp",
    "pressure_path",
    "record_compressions",
    "run_to_dataset",
    "tiled_server",
]
