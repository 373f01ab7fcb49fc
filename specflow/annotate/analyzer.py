"""Label stored runs with a registered phase model and write the result beside each run.

Per run: read it (:func:`specflow.ingest.run_to_dataset`), predict, write the node
``<run>/specflow/<model>-v<version>`` (see :mod:`.writer`), then copy the summary into the
run's metadata under ``specflow`` so the catalog can be searched (:func:`publish_rule`).
Idempotent and resumable: a complete node of the same model version is skipped, a
half-written one whose writer is gone is rewritten, a complete one is never deleted.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from tiled.queries import Eq, KeyPresent

import specflow
from specflow.data.schema import LABEL, TRUE_LABEL, SpectraValidationError
from specflow.ingest import catalog
from specflow.ingest.reader import run_to_dataset
from specflow.learn.decode import Decoded
from specflow.learn.predictor import ood_verdict

from . import writer
from .identify import identified_block
from .model import DEFAULT_MODEL_URI, LoadedModel, load_model
from .publication import PublicationLog
from .query import search
from .retry import (
    AnnotationError,
    RetryPolicy,
    TiledUnreachable,
    auth_problem,
    server_unreachable,
    with_retries,
)
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
    unreachable: bool = False  # failed because Tiled could not be reached


#: Failure reasons another try cannot fix (the run's data are bad or absent).
FINAL_REASONS = ("validation:", "no stream", "no such run")


def retryable(result: AnnotationResult) -> bool:
    """A failed run that another try may fix (server trouble, not bad data)."""
    return result.status == "failed" and not result.reason.startswith(FINAL_REASONS)


def build_summary(ds: Any, prediction: Any, model: LoadedModel, stream: str,
                  identifier: Any = None, decoded: Decoded | None = None) -> dict[str, Any]:
    """The ``specflow`` metadata block of a run (every key always present, so that Tiled's
    deep-merging ``update_metadata`` replaces an older version's values).

    The transition comes from the model's own sequence decoding of the run: ``decoded``
    when given (:meth:`LoadedModel.label_run`: the decoding that produced
    ``prediction["label"]``, done once), else the model's decoder on the probabilities. With an
    ``identifier`` (:mod:`specflow.identify.matching`), ``identified`` names the library phase of
    each segment of those labels (:func:`~.identify.identified_block`).
    """

    probs = prediction[["p0", "p1", "p2"]].to_numpy(dtype=float)
    ood = prediction["ood_score"].to_numpy(dtype=float)
    info = transition_summary(ds["pressure"].values, probs, model.decoder, decoded)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    summary: dict[str, Any] = {
        "status": writer.COMPLETE,
        "latest": None,  # the node's key, set when the node is written
        "model": model.provenance(),
        "specflow_version": specflow.__version__,
        "timestamp": now,
        "stream": stream,
        "n_curves": int(len(probs)),
        **info,
        "ood": ood_verdict(ood),
        "truth": None,
        "identified": (None if identifier is None else identified_block(
            identifier, ds, prediction["label"].to_numpy())),
    }
    truth_var = TRUE_LABEL if TRUE_LABEL in ds else LABEL
    if truth_var in ds:  # simulated runs carry their ground truth
        truth = ds[truth_var].values
        known = truth >= 0
        hit = prediction["label"].to_numpy()[known] == truth[known]
        summary["truth"] = {"accuracy": float(hit.mean()) if hit.size else None,
                            "source": "simulation phase_fraction"}
    return summary


def publish_rule(block: Mapping[str, Any], model: LoadedModel) -> str | None:
    """Why the run's published summary must not move to ``model`` (None: it may).

    The summary moves forward in version within one model name; it moves back only through
    the alias it was published with (the alias was rolled back). Another model name takes
    it over (annotate with ``publish=False`` to write a node without publishing it), but a
    version older than one of the same name already written on the run takes it only
    through an alias: handing the summary to another name does not open the way back.
    """
    current = block.get("model") or {}
    if block.get("status") == writer.COMPLETE and current.get("name") == model.name:
        published = int(current.get("version") or 0)
        if int(model.version) >= published:
            return None
        if model.alias is not None and current.get("alias") == model.alias:
            return None
        return (f"run summary stays with newer version {published} of {model.name} (an older "
                "version never replaces it, except through the alias it was published with)")
    written = [int(node.get("model_version") or 0) for node in
               (block.get("nodes") or {}).values() if node.get("model_name") == model.name]
    if model.alias is None and int(model.version) < max(written, default=0):
        return (f"run summary not moved to {model.name} v{model.version}: version "
                f"{max(written)} of {model.name} was written on this run (an older version "
                "never replaces it, except through an alias)")
    return None


def _listed(summary: dict[str, Any], key: str) -> dict[str, Any]:
    """The run metadata's ``nodes`` entry for node ``key``, and ``annotated``: the model
    version's latest node under its revision-free key (what the watcher searches for; a
    first annotation may land at ``-r2`` after an abandoned partial node)."""
    model = summary["model"]
    return {"nodes": {key: {"model_name": model["name"], "model_version": model["version"],
                            "timestamp": summary["timestamp"]}},
            "annotated": {writer.node_base(model["name"], model["version"]): key}}


LISTINGS = ("nodes", "annotated")


def _absolute_patch(current: Mapping[str, Any], block: Mapping[str, Any],
                    listing: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A JSON Patch setting every field of ``block`` under ``specflow`` and adding
    ``listing``'s entries, by path: unlike ``update_metadata``'s diff against the client's
    cached copy (lists patched by index), it means the same on any server state."""
    if not isinstance(current.get("specflow"), Mapping):
        return [{"op": "add", "path": "/specflow", "value": {**block, **listing}}]
    ops = [{"op": "add", "path": f"/specflow/{k}", "value": v} for k, v in block.items()
           if k not in LISTINGS]
    for group, entries in listing.items():
        if isinstance(current["specflow"].get(group), Mapping):
            ops += [{"op": "add", "path": f"/specflow/{group}/{k}", "value": v}
                    for k, v in entries.items()]
        else:
            ops.append({"op": "add", "path": f"/specflow/{group}", "value": entries})
    return ops


def _copy_published(client: Any, uid: str, log: PublicationLog,
                    listing: dict[str, Any]) -> None:
    """Copy the publication log's last entry into the run's metadata (with ``listing``, the
    writer's own node) and read it back, until the copy holds the last entry and no newer
    entry appeared meanwhile."""
    for _ in range(PUBLISH_TRIES):
        run = client[uid]
        seq, block = log.last()
        run.patch_metadata(_absolute_patch(run.metadata, block or {}, listing))
        fresh = client[uid]
        now, _ = log.last()
        copy = fresh.metadata.get("specflow") or {}
        if now == seq and all(copy.get(k) == v for k, v in (block or {}).items()
                              if k not in LISTINGS) and all(
                (copy.get(g) or {}).get(k) == v for g, e in listing.items() for k, v in e.items()):
            return
    raise RuntimeError(f"run {uid}: its published summary kept changing while it was copied "
                       "into the run's metadata; annotate it again")


def _record_node(run: Any, summary: dict[str, Any], key: str) -> None:
    """List a node in the run's metadata without publishing its summary (by path, as the
    published copy is written)."""
    run.patch_metadata(_absolute_patch(run.metadata, {}, _listed(summary, key)))


def _is_current(block: Mapping[str, Any], key: str, model: LoadedModel) -> bool:
    current = block.get("model") or {}
    return (block.get("latest") == key and block.get("status") == writer.COMPLETE
            and current.get("name") == model.name and str(current.get("version")) == model.version
            and current.get("alias") == model.alias)


#: How often a publisher decides again after losing the publication race
PUBLISH_TRIES = 20


def _finish(client: Any, uid: str, summary: dict[str, Any], key: str, model: LoadedModel,
            publish: bool, n: int, reason: str, wrote: bool) -> AnnotationResult:
    """Publish (or only list) a complete node, following :func:`publish_rule`, against what
    is published now: the publication log's last entry (:mod:`.publication`), or for a run
    published before the log, its metadata. Losing the race to publish means deciding again
    against the winner's entry."""
    log = None
    for _ in range(PUBLISH_TRIES):
        run = client[uid]
        if log is None:  # kept across tries: it fetches the log's container once
            log = PublicationLog(run.base)
        listed = run.metadata.get("specflow") or {}
        seq, published = log.last()
        block = {**(published if published is not None else listed),
                 "nodes": listed.get("nodes") or {}}
        if published is not None and listed.get("latest") != published.get("latest"):
            _copy_published(client, uid, log, {})  # its publisher stopped before copying it
        if publish and _is_current(block, key, model):
            status = "written" if wrote else "skipped"
            return AnnotationResult(uid, status, reason if wrote else
                                    f"already annotated by {model.uri}", key, n if wrote else 0)
        blocked = publish_rule(block, model) if publish else "not published (publish=False)"
        if blocked is not None:
            _record_node(run, summary, key)
            if not wrote:  # the node existed already and the summary may not move to it
                return AnnotationResult(uid, "skipped", blocked, key)
            return AnnotationResult(uid, "written", "; ".join(r for r in (reason, blocked)
                                                              if r), key, n)
        if log.append(seq + 1, {**summary, "latest": key}):
            _copy_published(client, uid, log, _listed(summary, key))
            return AnnotationResult(uid, "written", reason, key, n)
    raise RuntimeError(f"run {uid}: its published summary changed {PUBLISH_TRIES} times while "
                       "this annotation was being published; annotate it again")


def _drop_abandoned(container: Any, nodes: list[writer.Node], me: writer.Writer) -> set[int]:
    """Delete this model version's partial nodes whose writer is gone (or is ``me``: a
    retry's own leftover), each re-checked just before its delete; their revisions. No
    request where there are none."""
    dropped = set()
    for n in nodes:
        if not n.complete and writer.still_abandoned(container, n, me):
            writer.drop_node(container, n.key)
            dropped.add(n.revision)
    return dropped


def _annotate_once(client: Any, uid: str, model: LoadedModel, stream: str, force: bool,
                   publish: bool, me: writer.Writer, identifier: Any = None
                   ) -> AnnotationResult:

    try:
        run = client[uid]
    except KeyError:
        return AnnotationResult(uid, "failed", f"no such run {uid!r} in the catalog")
    children = dict(run.base.items())  # one listing: the streams and the specflow container
    container = children.get(writer.CONTAINER)
    nodes, taken = writer.model_nodes(container, model.name, model.version)
    ours = [n for n in nodes if n.finished_by_call(me)]
    done = [n for n in nodes if n.complete]
    if ours or (done and not force):  # nothing to write: clear what dead writers left
        _drop_abandoned(container, nodes, me)
    if ours:  # an earlier attempt of this call finished it (a retry after a lost answer)
        summary = ours[-1].metadata["summary"]
        return _finish(client, uid, summary, ours[-1].key, model, publish,
                       int(summary.get("n_curves", 0)), "", wrote=True)
    busy = [n for n in nodes if n.leased_by_other(me)]
    if busy:
        return AnnotationResult(uid, "skipped", "another annotator is writing this model's "
                                f"node ({busy[-1].describe_writer()})", busy[-1].key)
    if done and not force:
        last = done[-1]
        summary = {**last.metadata["summary"], "model": model.provenance()}  # via this alias
        if not publish:
            return AnnotationResult(uid, "skipped", f"already annotated by {model.uri}",
                                    last.key)
        return _finish(client, uid, summary, last.key, model, publish,
                       int(summary.get("n_curves", 0)), "summary restored from existing node",
                       wrote=False)
    try:
        ds = run_to_dataset(run, stream, node=children.get(stream))
    except SpectraValidationError as exc:
        return AnnotationResult(uid, "failed", f"validation: {'; '.join(exc.problems)}")
    except KeyError as exc:
        return AnnotationResult(uid, "failed", f"no stream {stream!r} ({exc})")
    prediction, decoded = model.label_run(ds)
    summary = build_summary(ds, prediction, model, stream, identifier, decoded)
    table = writer.phase_table(ds["seq_num"].values if "seq_num" in ds else
                               np.arange(1, ds.sizes["curve"] + 1), ds["time"].values,
                               ds["pressure"].values, prediction)
    dropped = _drop_abandoned(container, nodes, me)
    # never a key that was taken: a dropped key may already hold another writer's new node
    # (it saw the same abandoned node), and Tiled's create answers 409 to all but one
    revision = max(taken, default=0) + 1
    key = writer.node_key(model.name, model.version, revision)
    summary["latest"] = key
    if container is None:
        container = writer.create_specflow_container(run.base)
    try:
        node = writer.create_node(container, key, table, summary, me)
    except Exception as exc:
        if writer.status_code(exc) != 409:
            raise
        node = container[key]  # 409: someone created it first — or our own lost answer
        if not writer.written_by(node.metadata, me):
            return AnnotationResult(uid, "skipped", "another annotator is writing this "
                                    "model's node", key)
        writer.fill_node(node, table)
    writer.complete_node(node, summary)
    reason = ("replaced an abandoned partial node" if dropped else
              f"revision {revision} (forced)" if revision > 1 and done else "")
    return _finish(client, uid, summary, key, model, publish, len(table), reason, wrote=True)


def annotate_run(client: Any, uid: str, model: LoadedModel, *, stream: str = "primary",
                 force: bool = False, publish: bool = True, retry: RetryPolicy | None = None,
                 me: writer.Writer | None = None, identifier: Any = None) -> AnnotationResult:
    """Annotate one run; transient Tiled failures are retried, then reported as failed.

    Never deletes or rewrites a complete node: ``force`` writes the next revision beside it.
    ``publish`` copies the summary into the run's metadata (see :func:`publish_rule`);
    ``identifier`` also names each segment's phase (:func:`build_summary`).
    Raises :class:`AnnotationError` for problems that would fail every run (401/403).
    """
    t0 = time.perf_counter()
    policy = retry or RetryPolicy()
    me = me or writer.Writer()
    unreachable = False
    try:
        result = with_retries(
            lambda: _annotate_once(client, uid, model, stream, force, publish, me, identifier),
            policy, reachable=lambda: catalog.unreachable(client.uri, timeout=2.0) is None)
    except AnnotationError:
        raise
    except Exception as exc:
        problem = auth_problem(exc)
        if problem is not None:
            raise problem from exc
        unreachable = server_unreachable(exc)
        if not unreachable:
            logger.exception("annotating run %s failed", uid)
        result = AnnotationResult(uid, "failed", f"{type(exc).__name__}: {exc}")
    return AnnotationResult(**{**result.__dict__, "seconds": time.perf_counter() - t0,
                               "unreachable": unreachable})


def select_runs(client: Any, uids: Iterable[str] | None = None,
                query: Mapping[str, Any] | None = None, all_runs: bool = False) -> list[str]:
    """Run uids to annotate: the given ones, those matching ``query`` (key → value equality
    on run metadata, e.g. ``{"start.sample": "Fe"}``), or every finished run."""


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
    publish: bool = True,
    retry: RetryPolicy | None = None,
    on_result: Callable[[AnnotationResult], Any] | None = None,
    identifier: Any = None,
    batch: str | None = None,
) -> list[AnnotationResult]:
    """Label runs in Tiled with one registered model version and write the labels back.

    Parameters
    ----------
    client : tiled client node
        A writable catalog (an API key with write access).
    uids : iterable of str, optional
        The runs; or select them with ``query`` (metadata key → value) or ``all_runs``.
    model_uri : str
        ``models:/<name>@<alias>`` or ``models:/<name>/<version>``, resolved once.
    model : LoadedModel, optional
        An already loaded model instead of ``model_uri``.
    force : bool
        Annotate again: writes the next revision beside a complete node (none is deleted).
    publish : bool
        Copy the summary into the run's metadata (following the publishing rule in
        docs/annotate.md); False writes only the node.
    retry : RetryPolicy, optional
        Per-run retries of transient Tiled failures (bounded in tries and time).
    on_result : callable, optional
        Called with each run's result as it completes.
    identifier : PhaseIdentifier or LibraryMatcher, optional
        Also name the library phase of each segment (``specflow.identified``).
    batch : str, optional
        This call's name, recorded in every node it writes (default: a new one). A call
        with the name of an earlier one treats the nodes that one completed as its own:
        a stopped ``force`` batch resumes without writing a second revision of a run it
        had finished (:class:`TiledUnreachable` says the name).

    Returns
    -------
    list of AnnotationResult
        One per run, in the given order: ``written``, ``skipped`` or ``failed`` with a
        reason.

    Raises
    ------
    TiledUnreachable
        The server stayed unreachable through a run's retries: the batch stopped; its
        ``results`` hold what was done, and the same call resumes it.
    AnnotationError
        Bad credentials (401/403): every run would fail.

    Examples
    --------
    >>> annotate(client, query={"start.sample": "Fe"})  # doctest: +SKIP
    """
    model = model or load_model(model_uri)
    try:
        selected = select_runs(client, uids, query, all_runs)
    except Exception as exc:
        problem = auth_problem(exc)
        if problem is not None:
            raise problem from exc
        raise

    me = writer.Writer(call=batch or uuid.uuid4().hex)
    results: list[AnnotationResult] = []
    for uid in selected:  # in parallel: specflow.annotate.distributed (Dask)
        result = annotate_run(client, uid, model, stream=stream, force=force, publish=publish,
                              retry=retry, me=me, identifier=identifier)
        results.append(result)
        if on_result is not None:
            on_result(result)
        if result.unreachable:
            raise stopped_unreachable(result.reason, results, len(selected),
                                      me.call if force else None)
    return results


def stopped_unreachable(reason: str, results: list[AnnotationResult], total: int,
                        batch: str | None = None) -> TiledUnreachable:
    """The error that stops a batch when Tiled stayed unreachable, saying how far it got
    (and, for a forced batch, the name that resumes it without a second revision)."""
    written = sum(r.status == "written" for r in results)
    again = ("run the same command again to resume" if batch is None else
             f"run the same command again with --batch {batch} to resume (runs this batch "
             "finished are not forced a second time)")
    return TiledUnreachable(
        f"Tiled could not be reached ({reason}); stopped after {len(results)} of {total} runs "
        f"({written} written, {total - len(results)} not started). Complete nodes are kept; "
        f"{again}.", results=results, batch=batch)


__all__ = ["AnnotationError", "AnnotationResult", "TiledUnreachable", "annotate",
           "annotate_run", "build_summary", "publish_rule", "retryable", "select_runs",
           "stopped_unreachable"]
