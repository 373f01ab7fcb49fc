"""specflow: self-supervised phase labelling of X-ray diffraction curve streams."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("specflow")
except PackageNotFoundError:  # running from a bundled copy (e.g. an MLflow model's code/)
    __version__ = "0.1.0"


# The public API, imported on first use so that `import specflow` stays light (no torch).
_EXPORTS = {
    "PhaseClassifier": "specflow.learn.classifier",
    "simulate": "specflow.data.simulate",
    "simulate_family": "specflow.data.simulate",
    "read_spectra": "specflow.data.io",
    "write_spectra": "specflow.data.io",
    "make_spectra": "specflow.data.schema",
    "validate": "specflow.data.schema",
    "load_classifier": "specflow.registry.classifier",
    "log_classifier": "specflow.registry.classifier",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'specflow' has no attribute {name!r}")
