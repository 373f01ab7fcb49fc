"""specflow: phase labels for streams of X-ray diffraction curves."""

from importlib.metadata import PackageNotFoundError, version

import lazy_loader

try:
    __version__ = version("specflow")
except PackageNotFoundError:  # running from a bundled copy (e.g. an MLflow model's code/)
    __version__ = "0.1.0"


# The public API, imported on first use so that `import specflow` stays light (no torch).
__getattr__, __dir__, _names = lazy_loader.attach(__name__, submod_attrs={
    "learn.classifier": ["PhaseClassifier"],
    "simulator.simulate": ["simulate", "simulate_family"],
    "data.io": ["read_spectra", "write_spectra"],
    "data.sources": ["read_runs"],
    "data.labels": ["LabelSpec"],
    "data.schema": ["make_spectra", "validate"],
    "registry.classifier": ["load_classifier", "log_classifier"],
})
__all__ = ["__version__", *_names]
