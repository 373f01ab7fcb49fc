"""End-of-run annotation as a Prefect 3 flow (optional: ``pip install 'specflow[prefect]'``).

Beamline workflow repositories trigger one flow per finished run with the run's stop
document; :func:`end_of_run_annotation` is that flow for specflow: it annotates the run in
Tiled with the registered model (:func:`~.analyzer.annotate_run`: the same nodes, leases
and publishing rule as ``specflow annotate``) and returns the result. A failure that
another try may fix (Tiled restarting, the run not yet readable) fails the task, which
Prefect retries after 5, 20 and 60 s; bad data end the flow with a failed result at once.
The deployment file is ``deploy/prefect/prefect.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from tiled.client import from_uri

from .analyzer import annotate_run, retryable
from .model import DEFAULT_MODEL_URI, load_model


@task(retries=3, retry_delay_seconds=[5, 20, 60])
def annotate_finished_run(tiled_uri: str, api_key: str | None, uid: str, model_uri: str,
                          stream: str = "primary") -> dict[str, Any]:
    """Annotate run ``uid``; raises (so Prefect retries) when the failure may pass."""
    client = from_uri(tiled_uri, api_key=api_key)
    result = annotate_run(client, uid, load_model(model_uri), stream=stream)
    if retryable(result):
        raise RuntimeError(f"annotating {uid} failed, will retry: {result.reason}")
    return asdict(result)


@flow(name="end-of-run-annotation", log_prints=True)
def end_of_run_annotation(stop_doc: dict[str, Any], tiled_uri: str | None = None,
                          api_key: str | None = None, model_uri: str = DEFAULT_MODEL_URI,
                          stream: str = "primary") -> dict[str, Any]:
    """Annotate the run a Bluesky stop document closes.

    ``tiled_uri``/``api_key`` default to ``$TILED_URI``/``$TILED_API_KEY``; the model
    registry is ``$MLFLOW_TRACKING_URI``. Returns the :class:`~.analyzer.AnnotationResult`
    as a dict (``status``: written, skipped or failed).
    """
    uid = stop_doc.get("run_start")
    if not uid:
        raise ValueError("not a stop document: no 'run_start' (the run's uid)")
    tiled_uri = tiled_uri or os.environ.get("TILED_URI")
    if not tiled_uri:
        raise ValueError("no Tiled server: pass tiled_uri or set TILED_URI")
    api_key = api_key or os.environ.get("TILED_API_KEY")
    if stop_doc.get("exit_status", "success") != "success":
        get_run_logger().info("run %s ended with %s; annotating what was recorded", uid,
                              stop_doc.get("exit_status"))
    result = annotate_finished_run(tiled_uri, api_key, uid, model_uri, stream)
    get_run_logger().info("run %s: %s %s %s", uid, result["status"], result["node"] or "",
                          result["reason"])
    return result
