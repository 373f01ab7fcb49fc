"""Documents to TiledWriter in pages: the same run in Tiled, a fraction of the Python work.

TiledWriter (bluesky-tiled-plugins) checks every document against its JSON schema and copies
it before writing; for a detector that emits a StreamDatum and an event per frame that
per-document work, not the HTTP requests, bounds how many frames a second it registers
(``benchmarks/ingest.py --sections frames``). Two pieces cut it without changing what is
written:

* :class:`EventPager` — in front of the writer: consecutive events of each stream become one
  event page and consecutive StreamDatums of each stream resource one StreamDatum, handed on
  when a stream holds ``size`` events or frames (the writer's batch size: it writes then
  anyway) and before any other document;
* :class:`PagedRunNormalizer` — TiledWriter's own normaliser (its ``normalizer`` option),
  except that an event page whose keys need no renaming and hold no external references is
  checked and passed on as one page instead of one event at a time.

:func:`paged_writer` builds the pair.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bluesky_tiled_plugins import TiledWriter
from bluesky_tiled_plugins.writing.tiled_writer import (
    RESERVED_DATA_KEYS,
    RunNormalizer,
    concatenate_stream_datums,
)
from event_model import DocumentNames, pack_event_page


class PagedRunNormalizer(RunNormalizer):
    """TiledWriter's :class:`RunNormalizer`, with event pages kept whole where the
    per-event path would change nothing: every key an internal one of the descriptors (no
    external reference, no reserved name such as ``time`` or ``seq_num`` to rename), nothing
    ``filled`` and no ``event`` patch. Other pages go event by event, as before."""

    def event_page(self, doc: dict[str, Any]) -> None:
        internal = self._int_keys.difference(RESERVED_DATA_KEYS)
        if (self.patches.get("event") or doc.get("filled")
                or not internal.issuperset(doc["data"])
                or not internal.issuperset(doc["timestamps"])):
            return super().event_page(doc)
        self.emit(DocumentNames.event_page, copy.deepcopy(doc))


class EventPager:
    """Pass documents to ``downstream`` with events gathered into pages and StreamDatums
    merged, per stream, as TiledWriter batches them.

    A stream's events (one descriptor, the same keys) are held until, with the rows handed
    on since TiledWriter(``batch_size=size``) last wrote that stream, they make ``size``; a
    stream resource's consecutive StreamDatums (one descriptor) likewise until they cover
    ``size`` frames. TiledWriter writes at those moments anyway, so rows and frames reach
    Tiled when they did before. Everything held goes on before any other document (start,
    descriptor, resource, stop...): merged StreamDatums first, then the pages. Held
    documents are dropped only once ``downstream`` has taken them. Event pages that arrive
    whole go on unchanged after what is held.
    """

    def __init__(self, downstream: Callable[[str, dict], Any], size: int) -> None:
        if size < 1:
            raise ValueError(f"page size must be ≥ 1, got {size}")
        self.downstream, self.size = downstream, size
        self._events: dict[str, list[dict]] = {}
        self._datums: dict[tuple[str, str], list[dict]] = {}
        # rows (per descriptor) and frames (per resource) the writer holds unwritten
        self._unwritten_rows: dict[str, int] = {}
        self._unwritten_frames: dict[str, int] = {}

    def __call__(self, name: str, doc: dict) -> None:
        if name == "event":
            key = doc["descriptor"]
            held = self._events.get(key)
            if held and _columns(held[-1]) != _columns(doc):
                self._hand_on_events(key)  # a page holds one set of keys
            self._events.setdefault(key, []).append(doc)
            if len(self._events[key]) + self._unwritten_rows.get(key, 0) >= self.size:
                self._hand_on_events(key)
        elif name == "stream_datum":
            key = (doc["stream_resource"], doc["descriptor"])
            held = self._datums.get(key)
            if held and held[-1]["indices"]["stop"] != doc["indices"]["start"]:
                self._hand_on_datums(key)  # not consecutive: what is held goes on as it is
            self._datums.setdefault(key, []).append(doc)
            if _frames(self._datums[key]) + self._unwritten_frames.get(key[0], 0) >= self.size:
                self._hand_on_datums(key)
        else:
            self.flush()
            self.downstream(name, doc)

    def flush(self) -> None:
        """Hand on what is held: merged StreamDatums, then the event pages."""
        for key in list(self._datums):
            self._hand_on_datums(key)
        for key in list(self._events):
            self._hand_on_events(key)

    def _hand_on_datums(self, key: tuple[str, str]) -> None:
        held = self._datums[key]
        self.downstream(DocumentNames.stream_datum.value, concatenate_stream_datums(*held))
        del self._datums[key]
        frames = self._unwritten_frames.get(key[0], 0) + _frames(held)
        self._unwritten_frames[key[0]] = 0 if frames >= self.size else frames

    def _hand_on_events(self, key: str) -> None:
        held = self._events[key]
        self.downstream(DocumentNames.event_page.value, pack_event_page(*held))
        del self._events[key]
        rows = self._unwritten_rows.get(key, 0) + len(held)
        self._unwritten_rows[key] = 0 if rows >= self.size else rows


def _frames(datums: list[dict]) -> int:
    """Frames consecutive StreamDatums cover."""
    return datums[-1]["indices"]["stop"] - datums[0]["indices"]["start"]


def _columns(event: dict) -> tuple:
    """The keys an event page is made of (data, timestamps, filled)."""
    return (event["data"].keys(), event["timestamps"].keys(), event.get("filled", {}).keys())


def paged_writer(client: Any, batch_size: int) -> EventPager:
    """A TiledWriter (``batch_size`` rows or frames a write) behind an :class:`EventPager`
    of the same size, normalising with :class:`PagedRunNormalizer`."""
    return EventPager(TiledWriter(client, batch_size=batch_size,
                                  normalizer=PagedRunNormalizer), batch_size)
