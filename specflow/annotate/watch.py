"""Follow the catalog: annotate each run when its stop document lands, and re-annotate when
the registry alias moves to another version.

New runs are found through Tiled's websocket subscription (``child_metadata_updated``
carrying ``stop``) where the server has a streaming cache, else by polling. The champion
alias is polled every ``registry_interval`` seconds. Runs to re-annotate after an alias move
wait in a backlog that is worked through between new runs (a new run is never queued
behind the backlog). A run that failed for a reason another try may fix is tried again
after ``backoff * 2**(n-1)`` seconds (at most ``max_backoff``), up to ``max_attempts`` times;
while Tiled is unreachable there is no try limit, so an outage never drops a run.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tiled.queries import Key, KeyPresent

from .analyzer import AnnotationResult, annotate_run, retryable
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


def unannotated(name: str, version: str | int) -> tuple[Any, ...]:
    """Tiled queries for finished runs without a node of model ``name`` ``version``: neither
    its ``annotated`` marker nor, for runs annotated before the marker, its first node."""
    base = node_base(name, version)
    return (KeyPresent("stop"), KeyPresent(f"specflow.annotated.{base}", exists=False),
            KeyPresent(f"specflow.nodes.{base}", exists=False))


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
                 console: Any = None, max_attempts: int = 5, backoff: float = 10.0,
                 max_backoff: float = 600.0) -> None:
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
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._queue: queue.Queue[str] = queue.Queue()  # new runs: first
        self._queued: set[str] = set()  # what _queue holds (subscription thread + loop)
        self._lock = threading.Lock()
        self._backlog: deque[str] = deque()  # re-annotation after an alias move: between them
        self._in_backlog: set[str] = set()
        self._attempts: dict[tuple[str, str], int] = {}  # (uid, version) -> failed tries
        self._due: dict[tuple[str, str], float] = {}  # (uid, version) -> next try (monotonic)
        self._failed: set[tuple[str, str]] = set()  # (uid, version) given up on
        self._writer = Writer()  # one identity, so our own leases never block our retries

    def stop(self) -> None:
        """Ask :meth:`run` to return (thread-safe)."""
        self._stop.set()

    # -------------------------------------------------------------- discovery
    def _waiting(self, uid: str) -> bool:
        """Given up on, or waiting for its next try: not queued by discovery."""
        key = (uid, self.model.version)
        return key in self._failed or key in self._due

    def _on_metadata(self, update: Any) -> None:
        md = getattr(update, "metadata", None) or {}
        model = self.model
        if (model is not None and needs_annotation(md, model.name, model.version)
                and not self._waiting(update.key)):
            self._enqueue(update.key)

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
        try:
            hits = search(self.client, *unannotated(self.model.name, self.model.version))
            for uid in hits:
                if not self._waiting(uid) and uid not in self._in_backlog:
                    self._enqueue(uid)
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
                  f"re-annotating {len(uids)} run(s) labelled by version {old}, between "
                  "new runs")
        fresh = [uid for uid in uids if uid not in self._in_backlog]
        self._backlog.extend(fresh)
        self._in_backlog.update(fresh)

    def _queue_due_retries(self, now: float) -> None:
        for key, due in list(self._due.items()):
            if due <= now:
                del self._due[key]
                if key[1] == self.model.version:
                    self._enqueue(key[0])

    def _enqueue(self, uid: str) -> None:
        """Queue a run once (polling and subscription may both report it)."""
        with self._lock:
            if uid in self._queued:
                return
            self._queued.add(uid)
        self._queue.put(uid)

    def _take(self, block: bool) -> str | None:
        try:
            uid = self._queue.get(timeout=0.1) if block else self._queue.get_nowait()
        except queue.Empty:
            return None
        with self._lock:
            self._queued.discard(uid)
        return uid

    def _next(self) -> str | None:
        """A new run if one is queued, else the next backlog run, else wait briefly."""
        uid = self._take(block=False)
        if uid is not None:
            return uid
        if self._backlog:
            uid = self._backlog.popleft()
            self._in_backlog.discard(uid)
            if not self._backlog:
                self._say("re-annotation backlog done")
            return uid
        return self._take(block=True)

    @property
    def backlog(self) -> int:
        """Runs still waiting to be re-annotated after an alias move."""
        return len(self._backlog)

    # -------------------------------------------------------------- processing
    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    def _handle(self, uid: str) -> None:
        result = annotate_run(self.client, uid, self.model, stream=self.stream,
                              me=self._writer, retry=self.retry)
        if result.status == "failed":
            wait = self._schedule_retry(uid, retryable(result), result.unreachable)
            if wait is not None:
                result = AnnotationResult(**{**result.__dict__, "reason": f"{result.reason} "
                                             f"(try {self._attempts[(uid, self.model.version)]}"
                                             f"; again in {wait:.3g} s)"})
        else:
            self._attempts.pop((uid, self.model.version), None)
        self.results.append(result)
        self._say(f"{uid[:8]}  {result.status}  {result.node or ''}  {result.reason}")
        if self.on_result is not None:
            self.on_result(result)

    def _schedule_retry(self, uid: str, may_pass: bool = True, unreachable: bool = False
                        ) -> float | None:
        """Count a failed try of ``uid``; return the wait before the next one, or None when
        the watcher gives up on it. Tiled being unreachable has no try limit (an outage
        must not drop runs); other passing failures get ``max_attempts`` tries."""
        key = (uid, self.model.version)
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        if not may_pass or (attempts >= self.max_attempts and not unreachable):
            self._failed.add(key)
            return None
        # the exponent is capped: unlimited tries (an outage) must not overflow a float
        wait = min(self.max_backoff, self.backoff * 2 ** min(attempts - 1, 40))
        self._due[key] = time.monotonic() + wait
        return wait

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
                self._queue_due_retries(now)
                uid = self._next()
                if uid is None or self._waiting(uid):  # e.g. failed since it was queued
                    continue
                try:
                    md = self.client[uid].metadata
                except Exception as exc:  # e.g. Tiled restarting: tried again later
                    wait = self._schedule_retry(uid, unreachable=True)
                    logger.warning("cannot read run %s (%s); again in %.3g s", uid, exc, wait)
                    continue
                if needs_annotation(md, self.model.name, self.model.version):
                    self._handle(uid)
        finally:
            if sub is not None:
                # not joined: between reconnection attempts to a server that went away
                # Tiled's (daemon) thread sleeps up to 45 s before it notices
                sub.disconnect(wait=False)
        return self.results
