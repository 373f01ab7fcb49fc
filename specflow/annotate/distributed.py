"""Bulk (re-)annotation on a Dask distributed cluster.

The client resolves the model once (an alias moving meanwhile does not split the batch
between versions), cuts the runs into batches and submits them; every worker process
loads the model and opens its Tiled client once and keeps them for all its batches. Each
run is annotated by :func:`~.analyzer.annotate_run` (same idempotence, leases and
publishing rule as a local batch; the lease names the worker's host and pid). A batch
whose task raises is re-run by Dask (``retries``); runs reported failed for a reason that
may pass (server unreachable, a transient error) are submitted again in later rounds with
backoff; validation failures are final.

``LocalCluster`` (``workers=N``): N processes of one thread on this machine.
``scheduler="tcp://host:8786"``: an existing cluster whose workers have specflow installed
and can reach the Tiled server and the MLflow tracking URI (a server or a shared path).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask
import mlflow
from dask.distributed import Client, LocalCluster, as_completed
from tiled.client import from_uri

from . import writer
from .analyzer import (
    AnnotationError,
    AnnotationResult,
    annotate_run,
    retryable,
    stopped_unreachable,
)
from .model import LoadedModel
from .retry import RetryPolicy, auth_problem, is_transient, server_unreachable, with_retries

#: Per worker process: loaded models, Tiled clients, the writer identity, load counts.
_WORKER: dict[str, Any] = {"models": {}, "clients": {}, "writers": {}, "loads": 0}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model version and where to load it from (picklable, sent to workers)."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    tracking_uri: str
    registry_uri: str

    @classmethod
    def of(cls, model: LoadedModel) -> ModelRef:
        return cls(model.name, model.version, model.alias, model.run_id,
                   mlflow.get_tracking_uri(), mlflow.get_registry_uri())


def worker_model(ref: ModelRef) -> LoadedModel:
    """This process's copy of ``ref`` (loaded on first use, then kept). A worker's own
    ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI`` win over the client's (a remote cluster
    may reach the registry by another address than the submitting machine)."""
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or ref.tracking_uri
    registry = os.environ.get("MLFLOW_REGISTRY_URI") or (
        tracking if os.environ.get("MLFLOW_TRACKING_URI") else ref.registry_uri)
    key = f"{registry}|{ref.name}|{ref.version}"
    if key not in _WORKER["models"]:
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)
        pyfunc = mlflow.pyfunc.load_model(f"models:/{ref.name}/{ref.version}")
        _WORKER["models"][key] = LoadedModel(pyfunc, ref.name, ref.version, ref.alias,
                                             ref.run_id)
        _WORKER["loads"] += 1
    return _WORKER["models"][key]


def worker_client(tiled_uri: str, api_key: str | None) -> Any:
    """This process's Tiled client of ``tiled_uri`` (opened once)."""
    key = f"{tiled_uri}|{api_key}"
    if key not in _WORKER["clients"]:
        _WORKER["clients"][key] = from_uri(tiled_uri, api_key=api_key)
    return _WORKER["clients"][key]


def worker_state() -> dict[str, Any]:
    """What a worker holds: model versions loaded and how many loads it made."""
    return {"models": sorted(_WORKER["models"]), "loads": _WORKER["loads"]}


def annotate_batch(tiled_uri: str, api_key: str | None, uids: Sequence[str], ref: ModelRef,
                   call: str, stream: str = "primary", force: bool = False,
                   publish: bool = True, identifier: Any = None) -> list[AnnotationResult]:
    """Annotate ``uids`` in this worker process (the task Dask runs); stops at the first
    run that found Tiled unreachable (the rest of the batch is not tried).

    Each worker process leases nodes under its own writer id; ``call`` (one per
    :func:`annotate_on_dask`) lets a run retried on another worker recognise a node this
    call already completed.
    """
    try:  # a server restarting is ridden through; one that stays away fails the batch's runs
        client = with_retries(lambda: worker_client(tiled_uri, api_key), RetryPolicy())
    except Exception as exc:
        if auth_problem(exc) is not None or not is_transient(exc):
            raise
        return [AnnotationResult(uid, "failed", f"{type(exc).__name__}: {exc}",
                                 unreachable=server_unreachable(exc)) for uid in uids]
    model = worker_model(ref)
    me = _WORKER["writers"].setdefault(call, writer.Writer(call=call))
    results = []
    # Tiled's table reads compute with dask: here they run in this worker, not as tasks
    # sent back to the cluster (a restarted worker cancelled them: FutureCancelledError)
    with dask.config.set(scheduler="sync"):
        for uid in uids:
            results.append(annotate_run(client, uid, model, stream=stream, force=force,
                                        publish=publish, me=me, identifier=identifier))
            if results[-1].unreachable:
                break
    return results


@contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or of a LocalCluster of ``workers``
    single-threaded processes started (and stopped) here."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def annotate_on_dask(
    tiled_uri: str,
    api_key: str | None,
    uids: Sequence[str],
    model: LoadedModel,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    client: Client | None = None,
    stream: str = "primary",
    force: bool = False,
    publish: bool = True,
    identifier: Any = None,
    batch: str | None = None,
    batch_size: int = 4,
    task_retries: int = 2,
    rounds: int = 3,
    backoff: float = 1.0,
    on_result: Callable[[AnnotationResult], Any] | None = None,
) -> list[AnnotationResult]:
    """Annotate ``uids`` on a Dask cluster; one result per run, in the given order.

    Parameters
    ----------
    tiled_uri, api_key : str
        The Tiled server as the workers reach it.
    model : LoadedModel
        The resolved version (:func:`~.model.load_model`); workers load
        ``models:/<name>/<version>`` from their own ``MLFLOW_TRACKING_URI`` when set, else
        from this process's tracking/registry URIs (:func:`worker_model`).
    scheduler : str, optional
        ``tcp://host:8786`` of a running cluster; otherwise a LocalCluster of ``workers``.
    client : dask.distributed.Client, optional
        An open client to use instead (neither started nor closed here).
    batch_size : int
        Runs per task (fewer tasks, one model load per worker either way).
    task_retries : int
        Dask re-runs of a task that raised (e.g. its worker died).
    batch : str, optional
        The call's name (default: a new one); the name of a stopped forced call resumes it
        without a second revision of the runs it finished (:func:`~.analyzer.annotate`).
    rounds, backoff : int, float
        Runs that failed retryably are submitted again, up to ``rounds`` times in all,
        after ``backoff * 2**k`` seconds.

    Raises
    ------
    AnnotationError
        Bad credentials (401/403): every run would fail.
    TiledUnreachable
        A worker could not reach Tiled through a run's retries: the call stopped; its
        ``results`` hold what was done, and the same call resumes it.
    """
    if not uids:
        return []
    if client is None:
        with dask_client(scheduler, workers) as owned:
            return annotate_on_dask(tiled_uri, api_key, uids, model, client=owned,
                                    stream=stream, force=force, publish=publish,
                                    identifier=identifier, batch_size=batch_size,
                                    task_retries=task_retries, rounds=rounds,
                                    backoff=backoff, on_result=on_result, batch=batch)
    ref = ModelRef.of(model)
    call = batch or uuid.uuid4().hex
    shared = client.scatter(identifier, broadcast=True) if identifier is not None else None
    final: dict[str, AnnotationResult] = {}
    runs = list(dict.fromkeys(uids))
    pending = runs
    for k in range(max(1, rounds)):
        if k:
            time.sleep(backoff * 2 ** (k - 1))
        batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
        futures = {client.submit(annotate_batch, tiled_uri, api_key, batch, ref, call,
                                 stream, force, publish, shared, retries=task_retries,
                                 pure=False):
                   batch for batch in batches}
        again: list[str] = []
        for future in as_completed(futures):
            batch = futures[future]
            try:
                results = future.result()
            except AnnotationError:
                client.cancel(list(futures))
                raise
            except Exception as exc:  # the task kept failing (e.g. KilledWorker)
                results = [AnnotationResult(uid, "failed", f"{type(exc).__name__}: {exc}")
                           for uid in batch]
            for result in results:
                final[result.uid] = result
                if retryable(result) and k + 1 < rounds and not result.unreachable:
                    again.append(result.uid)
                elif on_result is not None:
                    on_result(result)
            down = next((r for r in results if r.unreachable), None)
            if down is not None:  # as annotate(): stop, say how far
                client.cancel(list(futures))
                raise stopped_unreachable(down.reason, list(final.values()), len(runs),
                                          call if force else None)
        if not again:
            break
        pending = again
    return [final[uid] for uid in runs]


__all__ = ["ModelRef", "annotate_batch", "annotate_on_dask", "dask_client", "worker_state"]
