"""Registered-model URIs: ``models:/<name>@<alias>`` or ``models:/<name>/<version>``."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` → (name, alias, None); ``models:/name/3`` → (name, None, "3")."""
    match = _URI.match(uri)
    if match is None:
        raise ValueError(
            f"model URI {uri!r} is not 'models:/<name>@<alias>' or 'models:/<name>/<version>'"
        )
    return match["name"], match["alias"], match["version"]


def resolve_version(uri: str) -> tuple[str, str, str | None, str | None]:
    """(name, version, alias, run_id) that ``uri`` points at now, from the registry."""
    name, alias, version = parse_model_uri(uri)
    client = MlflowClient()
    mv = (client.get_model_version_by_alias(name, alias) if alias
          else client.get_model_version(name, version))
    return name, str(mv.version), alias, mv.run_id


@contextmanager
def downloaded_model(uri: str) -> Iterator[Path]:
    """The model folder (``MLmodel``, ``artifacts/``) of the version ``uri`` points at now,
    downloaded into a temporary directory that lives as long as the block."""
    name, version, _, _ = resolve_version(uri)
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}",
                                                       dst_path=tmp))
