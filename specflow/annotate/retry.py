"""Bounded exponential backoff (stamina) for transient Tiled failures (server down, restarting,
5xx), and the errors that stop a batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import stamina

logger = logging.getLogger(__name__)
T = TypeVar("T")


class AnnotationError(RuntimeError):
    """Annotation cannot go on at all (bad credentials, unknown model): stop, don't skip."""


class TiledUnreachable(AnnotationError):
    """The server stayed unreachable through a run's retries: the batch stopped.

    ``results`` holds what was done before it stopped (rerunning the batch resumes it);
    ``batch``: the name that resumes a forced batch (``annotate(..., batch=)``).
    """

    def __init__(self, message: str, results: list | None = None,
                 batch: str | None = None) -> None:
        super().__init__(message)
        self.results = list(results or [])
        self.batch = batch


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, waiting ``base_delay * 2**i`` s (at most ``max_delay``);
    no new try starts once ``deadline`` seconds have passed since the first, nor, after
    ``grace`` seconds, while the server does not answer a quick request (it is gone, not
    restarting).

    These retries sit on top of the Tiled client's own (a refused connection is already
    retried for ~30 s inside one request), so they are few.
    """

    attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 8.0
    deadline: float = 30.0
    grace: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2**attempt)


def is_transient(exc: BaseException) -> bool:
    """Connection problems and server errors are worth retrying; 4xx answers are not."""
    if isinstance(exc, httpx.HTTPStatusError) and (
            exc.response.status_code >= 500 or exc.response.status_code == 429):
        return True
    return server_unreachable(exc)


def server_unreachable(exc: BaseException) -> bool:
    """The server could not be reached at all (connection refused or reset, DNS, timeout, or a
    gateway answering for it: 502/503/504), as opposed to a server that answered wrongly."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in (502, 503, 504)
    return isinstance(exc, httpx.TransportError | ConnectionError)


def auth_problem(exc: BaseException) -> AnnotationError | None:
    """A clear error for Tiled's 401/403 answers (and the no-key RuntimeError), else None."""
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (401, 403):
        code = exc.response.status_code
        return AnnotationError(
            f"Tiled refused the request ({code} {'unauthorized' if code == 401 else 'forbidden'})"
            ": writing annotations needs a valid API key with write access; pass --api-key or "
            "set TILED_API_KEY"
        )
    if isinstance(exc, RuntimeError) and "API key" in str(exc):
        return AnnotationError(
            "this Tiled server requires an API key: pass --api-key or set TILED_API_KEY")
    return None


def with_retries(fn: Callable[[], T], policy: RetryPolicy,
                 on_retry: Callable[[int, BaseException], None] | None = None,
                 reachable: Callable[[], bool] | None = None) -> T:
    """Call ``fn`` until it succeeds, retrying transient errors with stamina's exponential
    backoff (bounded in tries and in time). ``reachable``: one quick check, made when a try
    found the server unreachable after ``policy.grace`` seconds; if the server does not answer
    it either, stop at once (the next try would only spend the client's own retries on a
    server that is gone; a restart shorter than the grace is ridden through)."""
    start = time.monotonic()
    retries = 0

    def retry_on(exc: Exception) -> bool:  # called after every failed try, the last too
        nonlocal retries
        if retries >= policy.attempts - 1:
            return False
        if auth_problem(exc) is not None or not is_transient(exc):
            return False
        if time.monotonic() - start + policy.delay(retries) > policy.deadline:
            return False
        if (reachable is not None and server_unreachable(exc)
                and time.monotonic() - start >= policy.grace and not reachable()):
            return False
        retries += 1
        logger.warning("Tiled unavailable (%s); retry %d/%d in %.1f s", exc, retries,
                       policy.attempts - 1, policy.delay(retries - 1))
        if on_retry is not None:
            on_retry(retries, exc)
        return True

    try:
        for attempt in stamina.retry_context(
                on=retry_on, attempts=policy.attempts, timeout=policy.deadline,
                wait_initial=policy.base_delay, wait_max=policy.max_delay, wait_jitter=0.0):
            with attempt:
                return fn()
    except Exception as exc:
        problem = auth_problem(exc)
        if problem is not None:
            raise problem from exc
        raise
    raise AssertionError("unreachable")
