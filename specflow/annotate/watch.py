"""Follow the catalog: annotate each run when its stop document lands, and re-annotate when
the registry alias moves to another version.

New runs are found through Tiled's websocket subscription (``child_metadata_updated``
carrying ``stop``) where the server has a streaming cache, else by polling. The champion
alias is polled every ``registry_interval`` seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from tiled.queries import Key, KeyPresent

from .analyzer import AnnotationResult, annotate_run
from .model import DEFAULT_MODEL_URI, LoadedModel, load_model, resolve_version
from .query import search
from .retry import RetryPolicy
from .writer import Writer, node_base

logger = logging.getLogger(__name__)


def needs_annotation(md: Any, name: str, version: str) -> bool:
    """A finished run without a node of model ``name`` ``version`` (guards against our own
    metadata update re-triggering us, and against two watchers of different models
    re-publishing in turn)."""
    if "stop" not in md or not md.get("stop"):
        return False
    nodes = ((md.get("specflow") or {}).get("nodes") or {}).values()
    return not any(n.get("model_name") == name and str(n.get("model_version")) == str(version)
                   for n in nodes if isinstance(n, dict))


class Watcher:
    """Annotate runs as they finish; re-annotate the old champion's runs when it changes.

    ``mode``: ``"auto"`` (subscribe, fall back to polling), ``"subscribe"`` or ``"poll"``.
    Call :meth:`run` (blocks until :meth:`stop`, ``max_events`` results or ``timeout`` s).
    """

    def __init__(self, client: Any, model_uri: str = DEFAULT_MODEL_URI, *,
                 mode: str = "auto", poll_interval: float = 2.0,
                 registry_interval: float = 10.0, stream: str = "primary",
                 retry: RetryPolicy | None = None,
                 on_result: Callable[[AnnotationResult], Any] | None = None,
                 console: Any = None) -> None:
        self.client = client
        self.model_uri = model_uri
        self.mode = mode
        self.poll_interval = poll_interval
        self.registry_interval = registry_interval
        self.stream = stream
        self.retry = retry or RetryPolicy()
        self.on_result = on_result
        self.console = console
        self.results: list[AnnotationResult] = []
        self.model: LoadedModel | None = None
        self.subscribed = False
        self._stop = threading.Event()
        self._queue: queue.Queue[str] = queue.Queue()
        self._failed: set[tuple[str, str]] = set()  # (uid, version) not to retry forever
        self._writer = Writer()  # one identity, so our own leases never block our retries

    def stop(self) -> None:
        """Ask :meth:`run` to return (thread-safe)."""
        self._stop.set()

    # -------------------------------------------------------------- discovery
    def _on_metadata(self, update: Any) -> None:
        md = getattr(update, "metadata", None) or {}
        model = self.model
        if (model is not None and needs_annotation(md, model.name, model.version)
                and (update.key, model.version) not in self._failed):
            self._queue.put(update.key)

    def _subscribe(self) -> Any | None:
        if self.mode == "poll":
            return None
        try:
            sub = self.client.subscribe()
            sub.child_metadata_updated.add_callback(self._on_metadata)
            sub.start_in_thread()
            self.subscribed = True
            return sub
        except Exception as exc:
            if self.mode == "subscribe":
                raise
            logger.info("Tiled subscriptions unavailable (%s); polling every %.1f s",
                        exc, self.poll_interval)
            return None

    def _poll(self) -> None:
        """Queue finished runs without a node of the current model version (new runs, and
        runs another model annotated)."""

        if self.model is None:
            return
        listed = f"specflow.nodes.{node_base(self.model.name, self.model.version)}"
        try:
            hits = search(self.client, KeyPresent("stop"), KeyPresent(listed, exists=False))
            for uid in hits:
                if (uid, self.model.version) not in self._failed:
                    self._queue.put(uid)
        except Exception as exc:
            logger.warning("polling Tiled failed: %s", exc)

    def _check_alias(self) -> None:
        """Load the new version if the alias moved, and queue the old version's runs."""

        try:
            _, version, _, _ = resolve_version(self.model_uri)
        except Exception as exc:
            logger.warning("registry unavailable: %s", exc)
            return
        if version == self.model.version:
            return
        old = self.model.version
        self.model = load_model(self.model_uri)
        uids = list(search(self.client, Key("specflow.model.name") == self.model.name,
                           Key("specflow.model.version") == int(old)))
        self._say(f"[bold]alias moved[/]: {self.model_uri} is now version {version}; "
                  f"re-annotating {len(uids)} run(s) labelled by version {old}")
        self._reannotate(uids)

    def _reannotate(self, uids: list[str]) -> None:

        with Progress(TextColumn("re-annotating"), BarColumn(), MofNCompleteColumn(),
                      console=self.console, transient=True) as progress:
            task = progress.add_task("runs", total=len(uids))
            for uid in uids:
                if self._stop.is_set():
                    return
                self._handle(uid)
                progress.advance(task)

    # -------------------------------------------------------------- processing
    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    def _handle(self, uid: str) -> None:
        result = annotate_run(self.client, uid, self.model, stream=self.stream,
                              me=self._writer, retry=self.retry)
        if result.status == "failed":
            self._failed.add((uid, self.model.version))
        self.results.append(result)
        self._say(f"{uid[:8]}  {result.status}  {result.node or ''}  {result.reason}")
        if self.on_result is not None:
            self.on_result(result)

    def _done(self, max_events: int | None, deadline: float) -> bool:
        return (self._stop.is_set() or time.monotonic() > deadline
                or (max_events is not None and len(self.results) >= max_events))

    def run(self, max_events: int | None = None, timeout: float | None = None
            ) -> list[AnnotationResult]:
        """Watch until stopped; returns the results so far."""
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        self.model = self.model or load_model(self.model_uri)
        sub = self._subscribe()
        self._poll()  # catch up on runs that finished while nobody watched
        next_poll = time.monotonic() + self.poll_interval
        next_alias = time.monotonic() + self.registry_interval
        try:
            while not self._done(max_events, deadline):
                now = time.monotonic()
                if now >= next_alias:
                    self._check_alias()
                    next_alias = now + self.registry_interval
                if sub is None and now >= next_poll:
                    self._poll()
                    next_poll = now + self.poll_interval
                try:
                    uid = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                try:
                    md = self.client[uid].metadata
                except Exception as exc:  # e.g. Tiled restarting: the poll finds it later
                    logger.warning("cannot read run %s: %s", uid, exc)
                    continue
                if needs_annotation(md, self.model.name, self.model.version):
                    self._handle(uid)
        finally:
            if sub is not None:
                sub.disconnect()
        return self.results
