"""Ingest: simulated beamline, Bluesky plans, Tiled persistence and live collection."""

from .callback import Problem, SpectraCollector, SpectraUpdate, collect
from .commands import TILED_BATCH_SIZE, ingest_demo
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
    "ingest_demo",
    "pressure_path",
    "run_to_dataset",
    "tiled_server",
]
