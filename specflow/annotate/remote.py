"""Bluesky documents from another process: a 0MQ proxy or Kafka.

At a beamline the RunEngine runs in the acquisition process and publishes its documents;
analysis consumes them elsewhere. Two transports are supported:

* **0MQ** — the RunEngine subscribes ``bluesky.callbacks.zmq.Publisher("proxy:5577")``, a
  ``bluesky-0MQ-proxy 5577 5578`` forwards, and :func:`follow_zmq` reads from port 5578
  (``bluesky.callbacks.zmq.RemoteDispatcher``; documents pickled, bluesky's default).
* **Kafka** — the RunEngine publishes with ``bluesky_kafka.Publisher`` to the topic
  ``<beamline>.bluesky.runengine.documents`` (:func:`kafka_topic`, the facility
  convention) and :func:`follow_kafka` consumes it with ``bluesky_kafka.RemoteDispatcher``
  (msgpack; the optional extra ``specflow[kafka]``).

Either way every document goes to ``callback`` (e.g. a :class:`~.live.LivePhaseMonitor`),
until ``max_runs`` stop documents have passed, ``timeout`` seconds, or Ctrl+C.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from bluesky.callbacks.zmq import RemoteDispatcher as ZmqDispatcher

Callback = Callable[[str, dict], Any]


def kafka_topic(beamline: str) -> str:
    """The documents topic of a beamline, ``<beamline>.bluesky.runengine.documents``."""
    return f"{beamline.lower()}.bluesky.runengine.documents"


class RunCounter:
    """Pass documents on; count stop documents; say when enough runs have ended."""

    def __init__(self, callback: Callback, max_runs: int | None) -> None:
        self.callback = callback
        self.max_runs = max_runs
        self.runs = 0

    def __call__(self, name: str, doc: dict) -> None:
        self.callback(name, doc)
        if name == "stop":
            self.runs += 1

    @property
    def done(self) -> bool:
        return self.max_runs is not None and self.runs >= self.max_runs


def follow_zmq(address: str, callback: Callback, *, prefix: bytes = b"",
               max_runs: int | None = None, timeout: float | None = None) -> int:
    """Feed ``callback`` the documents a 0MQ proxy publishes at ``address`` (``host:port``,
    the proxy's out port); returns the number of runs that ended. Blocks."""
    counter = RunCounter(callback, max_runs)
    dispatcher = ZmqDispatcher(address, prefix=prefix)
    dispatcher.subscribe(counter)
    deadline = None if timeout is None else time.monotonic() + timeout

    def check() -> None:  # runs in the dispatcher's loop
        if counter.done or (deadline is not None and time.monotonic() > deadline):
            if dispatcher._task is not None:
                dispatcher._task.cancel()
            return
        dispatcher.loop.call_later(0.05, check)

    dispatcher.loop.call_soon(check)
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        dispatcher.start()
    return counter.runs


def follow_kafka(bootstrap_servers: str, beamline: str, callback: Callback, *,
                 group_id: str = "specflow-live", max_runs: int | None = None,
                 timeout: float | None = None,
                 consumer_config: dict[str, Any] | None = None) -> int:
    """Feed ``callback`` the documents of ``beamline``'s Kafka topic; returns the number of
    runs that ended. Needs ``bluesky-kafka`` (``pip install 'specflow[kafka]'``). Blocks."""
    try:
        from bluesky_kafka import RemoteDispatcher as KafkaDispatcher
    except ImportError as exc:
        raise RuntimeError("Kafka needs bluesky-kafka: pip install 'specflow[kafka]'") from exc
    counter = RunCounter(callback, max_runs)
    config = {"auto.offset.reset": "latest", **(consumer_config or {})}
    dispatcher = KafkaDispatcher(topics=[kafka_topic(beamline)],
                                 bootstrap_servers=bootstrap_servers, group_id=group_id,
                                 consumer_config=config)
    dispatcher.subscribe(counter)
    deadline = None if timeout is None else time.monotonic() + timeout

    def keep_going() -> bool:
        return not counter.done and (deadline is None or time.monotonic() < deadline)

    with contextlib.suppress(KeyboardInterrupt):
        dispatcher.start(continue_polling=keep_going)
    return counter.runs


__all__ = ["RunCounter", "follow_kafka", "follow_zmq", "kafka_topic"]
