"""Production ingest: Bluesky plans, live collection of documents into the canonical
layout, frames integrated with pyFAI, documents written to Tiled in pages, runs read back
from Tiled, catalog search.

The names below are imported on first use, so that reading a run loads only what it needs.
The simulated beamline that feeds these in the demo and the tests is
:mod:`specflow.simulator`; local servers are :mod:`specflow.servers`.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "callback": ["Problem", "SpectraCollector", "SpectraUpdate", "collect"],
    "frames": ["INTEGRATED_STREAM", "IntegratingRouter"],
    "paging": ["EventPager", "PagedRunNormalizer", "paged_writer"],
    "plans": ["compression_ramp", "pressure_path"],
    "reader": ["RunLayout", "run_to_dataset"],
})
