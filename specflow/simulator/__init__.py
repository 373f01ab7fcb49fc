"""The simulator: physically grounded diamond-anvil-cell diffraction runs and the simulated
beamline that records them.

Physics: equations of state (``eos``), crystal phases under pressure (``phases``), the
transition library (``transitions``), line profiles (``lines``), what the cell and detector
add (``artefacts``), whole runs (``simulate``), the ideal observer (``observer``) and
domain-randomised training corpora (``corpus``). Beamline: ophyd devices (``devices``),
area-detector frames (``area``, ``detector``) and runs recorded through a RunEngine into
Tiled (``runs``). Names below are imported on first use.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "simulate": ["simulate", "simulate_family", "simulate_run"],
    "devices": ["DiamondAnvilCell", "IntegratedDetector", "SpectrumSignal"],
    "detector": ["AreaDetector", "FrameFile"],
    "area": ["DetectorGeometry", "FrameRenderer"],
    "runs": ["TILED_BATCH_SIZE", "record_compressions", "record_frame_compressions"],
})
