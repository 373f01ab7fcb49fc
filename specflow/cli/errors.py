"""The CLI's error boundary: expected failures become one or two lines and exit code 1.

Usage errors (bad options) stay click's (exit code 2), as does a ``--data`` value that names
no file. Anything not recognised here is a bug and keeps its traceback; ``specflow --debug
...`` (or ``SPECFLOW_DEBUG=1``) shows the traceback for everything.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
import httpx
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

HINT = "(run with --debug for the traceback)"
#: Packages that come with an extra of specflow (pyproject.toml), by import name
EXTRAS = {"pyFAI": "beamline", "fabio": "beamline", "hdf5plugin": "beamline",
          "distributed": "dask", "dask": "dask", "zmq": "live", "bluesky_kafka": "kafka",
          "umap": "umap", "onnxruntime": "onnx", "onnx": "onnx", "prefect": "prefect",
          "psycopg2": "postgres"}


def _raised_by(exc: BaseException, module: str, name: str) -> bool:
    """``exc`` is a ``module.name``; False without importing ``module`` when nothing has
    (then nothing can have raised it): the root CLI stays light."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


def user_message(exc: BaseException) -> str | None:
    """One or two lines for an expected failure, None for anything else."""

    if _raised_by(exc, "specflow.data.schema", "SpectraValidationError"):
        shown = exc.problems[:4]
        more = f" (+{len(exc.problems) - 4} more)" if len(exc.problems) > 4 else ""
        return "invalid spectra: " + "; ".join(shown) + more
    if _raised_by(exc, "specflow.annotate.retry", "AnnotationError"):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in EXTRAS:
        extra = EXTRAS[exc.name.split(".")[0]]
        return (f"{exc.name} is not installed: this needs specflow's '{extra}' extra "
                f"(pip install 'specflow[{extra}]')")
    if isinstance(exc, FileNotFoundError):
        if exc.strerror and exc.strerror != os.strerror(2):  # our own explanation
            return exc.strerror
        return f"no such file or directory: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc} (a read-only location?)"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach the server: {type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the server refused the request: {str(exc).splitlines()[0]}"
    if _is_readonly(exc):
        return ("the MLflow store is read-only (attempt to write a readonly database): "
                "use a writable --workdir or MLFLOW_TRACKING_URI")
    if type(exc).__name__ == "MlflowException":
        text = str(getattr(exc, "message", exc)).splitlines()[0]
        return (f"MLflow: {text} — check --model, and --workdir or MLFLOW_TRACKING_URI "
                "(which store is in use)")
    if isinstance(exc, OSError | ValueError):  # specflow's own checks raise ValueError
        text = str(exc).strip() or type(exc).__name__
        return text.splitlines()[0] + (" …" if "\n" in text else "")
    return None


def _is_readonly(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if "readonly database" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def debug_enabled(ctx: click.Context) -> bool:
    return bool(ctx.meta.get("specflow.debug")) or os.environ.get("SPECFLOW_DEBUG") == "1"


class ErrorBoundary(TyperGroup):
    """A command group that turns expected failures into a short message (exit code 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException,
                click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            message = None if debug_enabled(ctx) else user_message(exc)
            if message is None:
                raise
            Console(stderr=True).print(f"[red]error:[/] {escape(message)}\n[dim]{HINT}[/]",
                                       soft_wrap=True, highlight=False)
            usage = _raised_by(exc, "specflow.data.sources", "NoSuchRun")
            raise typer.Exit(2 if usage else 1) from None
