"""Label stored runs with a registered phase model and write the result beside each run.

Per run: read it (:func:`specflow.ingest.run_to_dataset`), predict, write the node
``<run>/specflow/v<version>`` (see :mod:`.writer`), then copy the summary into the run's
metadata under ``specflow`` so the catalog can be searched. Idempotent and resumable: a
complete node for the same model version is skipped, a half-written one is rewritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from specflow.data.schema import LABEL, TRUE_LABEL, SpectraValidationError
from specflow.learn.data import wavelength_of
from specflow.learn.predictor import ood_verdict

from . import writer
from .model import DEFAULT_MODEL_URI, LoadedModel, load_model
from .retry import AnnotationError, RetryPolicy, auth_problem, with_retries
from .summary import transition_summary

logger = logging.getLogger(__name__)
Status = Literal["written", "skipped", "failed"]


@dataclass(frozen=True)
class AnnotationResult:
    """What happened to one run."""

    uid: str
    status: Status
    reason: str = ""
    node: str | None = None
    n_curves: int = 0
    seconds: float = 0.0


def build_summary(ds: Any, prediction: Any, model: LoadedModel, stream: str) -> dict[str, Any]:
    """The ``specflow`` metadata block of a run (every key always present, so that Tiled's
    deep-merging ``update_metadata`` replaces an older version's values).

    The transition comes from the model's own sequence decoder on the per-curve
    probabilities, i.e. the same decoding that produced ``prediction["label"]``.
    """
    import specflow

    probs = prediction[["p0", "p1", "p2"]].to_numpy(dtype=float)
    ood = prediction["ood_score"].to_numpy(dtype=float)
    info = transition_summary(ds["pressure"].values, probs, model.decoder)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    summary: dict[str, Any] = {
        "status": writer.COMPLETE,
        "latest": model.node_key,
        "model": model.provenance(),
        "specflow_version": specflow.__version__,
        "timestamp": now,
        "stream": stream,
        "n_curves": int(len(probs)),
        **info,
        "ood": ood_verdict(ood),
        "truth": None,
    }
    truth_var = TRUE_LABEL if TRUE_LABEL in ds else LABEL
    if truth_var in ds:  # simulated runs carry their ground truth
        truth = ds[truth_var].values
        known = truth >= 0
        hit = prediction["label"].to_numpy()[known] == truth[known]
        summary["truth"] = {"accuracy": float(hit.mean()) if hit.size else None,
                            "source": "simulation phase_fraction"}
    return summary


def _publish(run: Any, summary: dict[str, Any], key: str) -> None:
    """Copy a node's summary into the run's metadata and point ``latest`` at it."""
    block = {**summary, "latest": key,
             "nodes": {key: {"model_version": summary["model"]["version"],
                             "timestamp": summary["timestamp"]}}}
    run.update_metadata({"specflow": block})


def _is_current(run_md: Mapping[str, Any], key: str, model: LoadedModel) -> bool:
    block = run_md.get("specflow") or {}
    return (block.get("latest") == key and block.get("status") == writer.COMPLETE
            and str((block.get("model") or {}).get("version")) == model.version)


def _annotate_once(client: Any, uid: str, model: LoadedModel, stream: str,
                   force: bool) -> AnnotationResult:
    from specflow.ingest.reader import run_to_dataset

    run = client[uid]
    key = model.node_key
    container = writer.specflow_container(run.base)
    state, node_md = writer.node_state(container, key)
    if state == writer.COMPLETE and not force:
        if _is_current(run.metadata, key, model):
            return AnnotationResult(uid, "skipped", f"already annotated by {model.uri}", key)
        _publish(run, node_md["summary"], key)  # node done, run summary missing or stale
        return AnnotationResult(uid, "written", "summary restored from existing node", key,
                                int(node_md["summary"].get("n_curves", 0)))
    try:
        ds = run_to_dataset(run, stream)
    except SpectraValidationError as exc:
        return AnnotationResult(uid, "failed", f"validation: {'; '.join(exc.problems)}")
    except KeyError as exc:
        return AnnotationResult(uid, "failed", f"no stream {stream!r} ({exc})")
    prediction = model.predict(ds["intensity"].values, ds["two_theta"].values,
                               ds["pressure"].values, wavelength_of(ds))
    summary = build_summary(ds, prediction, model, stream)
    table = writer.phase_table(ds["seq_num"].values if "seq_num" in ds else
                               np.arange(1, ds.sizes["curve"] + 1), ds["time"].values,
                               ds["pressure"].values, prediction)
    if state is not None:  # partial (an interrupted write) or forced: start this node afresh
        writer.drop_node(container, key)
    container = writer.specflow_container(run.base, create=True)
    writer.write_node(container, key, table, summary)
    _publish(run, summary, key)
    return AnnotationResult(uid, "written", "repaired partial node" if state else "", key,
                            len(table))


def annotate_run(client: Any, uid: str, model: LoadedModel, *, stream: str = "primary",
                 force: bool = False, retry: RetryPolicy | None = None) -> AnnotationResult:
    """Annotate one run; transient Tiled failures are retried, then reported as failed.

    Raises :class:`AnnotationError` for problems that would fail every run (401/403).
    """
    t0 = time.perf_counter()
    policy = retry or RetryPolicy()
    try:
        result = with_retries(lambda: _annotate_once(client, uid, model, stream, force), policy)
    except AnnotationError:
        raise
    except Exception as exc:
        problem = auth_problem(exc)
        if problem is not None:
            raise problem from exc
        logger.exception("annotating run %s failed", uid)
        result = AnnotationResult(uid, "failed", f"{type(exc).__name__}: {exc}")
    return AnnotationResult(**{**result.__dict__, "seconds": time.perf_counter() - t0})


def select_runs(client: Any, uids: Iterable[str] | None = None,
                query: Mapping[str, Any] | None = None, all_runs: bool = False) -> list[str]:
    """Run uids to annotate: the given ones, those matching ``query`` (key → value equality
    on run metadata, e.g. ``{"start.sample": "Fe"}``), or every finished run."""
    from tiled.queries import Eq, KeyPresent

    from .query import search

    if uids:
        return list(uids)
    if not query and not all_runs:
        raise ValueError("say which runs: uids, a query, or all_runs=True")
    queries = [KeyPresent("stop")] + [Eq(k, v) for k, v in (query or {}).items()]
    return list(search(client, *queries))


def annotate(
    client: Any,
    uids: Iterable[str] | None = None,
    *,
    query: Mapping[str, Any] | None = None,
    all_runs: bool = False,
    model_uri: str = DEFAULT_MODEL_URI,
    model: LoadedModel | None = None,
    stream: str = "primary",
    force: bool = False,
    retry: RetryPolicy | None = None,
    on_result: Callable[[AnnotationResult], Any] | None = None,
    workers: int = 1,
) -> list[AnnotationResult]:
    """Annotate many runs with one model version (resolved once); one result per run.

    Runs failing validation are reported and skipped; the rest go on. ``workers`` > 1
    annotates that many runs at once (the per-run time is mostly HTTP round trips).
    """
    model = model or load_model(model_uri)
    try:
        selected = select_runs(client, uids, query, all_runs)
    except Exception as exc:
        problem = auth_problem(exc)
        if problem is not None:
            raise problem from exc
        raise
    from concurrent.futures import ThreadPoolExecutor

    def one(uid: str) -> AnnotationResult:
        result = annotate_run(client, uid, model, stream=stream, force=force, retry=retry)
        if on_result is not None:
            on_result(result)
        return result

    if workers <= 1:
        return [one(uid) for uid in selected]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, selected))


__all__ = ["AnnotationError", "AnnotationResult", "annotate", "annotate_run", "build_summary",
           "select_runs"]
