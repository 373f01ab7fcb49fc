"""specflow: self-supervised phase labelling of X-ray diffraction curve streams."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("specflow")
except PackageNotFoundError:  # running from a bundled copy (e.g. an MLflow model's code/)
    __version__ = "0.1.0"
