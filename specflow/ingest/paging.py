"""Documents to TiledWriter in pages: the same run in Tiled, a fraction of the Python work.

TiledWriter (bluesky-tiled-plugins) checks every document against its JSON schema and copies
it before writing; for a detector that emits a StreamDatum and an event per frame that
per-document work, not the HTTP requests, bounds how many frames a second it registers
(``benchmarks/ingest.py --sections frames``). Two pieces cut it without changing what is
written:

* :class:`EventPager` — in front of the writer: consecutive events of each stream become one
  event page and consecutive StreamDatums of each stream resource one StreamDatum, handed on
  every ``size`` events (the writer's batch size, so rows and frames reach Tiled when they
  did before) and before any other document;
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
    merged.

    Events are held per stream (descriptor) and StreamDatums per stream resource; after
    ``size`` events, and before any other document (start, descriptor, resource, stop...),
    the merged StreamDatums go first, then one event page per stream, in arrival order of the
    streams. Event pages that arrive whole go on unchanged after what is held.
    """

    def __init__(self, downstream: Callable[[str, dict], Any], size: int) -> None:
        if size < 1:
            raise ValueError(f"page size must be ≥ 1, got {size}")
        self.downstream, self.size = downstream, size
        self._events: dict[str, list[dict]] = {}
        self._datums: dict[str, list[dict]] = {}
        self._held = 0

    def __call__(self, name: str, doc: dict) -> None:
        if name == "event":
            self._events.setdefault(doc["descriptor"], []).append(doc)
            self._held += 1
            if self._held >= self.size:
                self.flush()
        elif name == "stream_datum":
            held = self._datums.setdefault(doc["stream_resource"], [])
            if held and held[-1]["indices"]["stop"] != doc["indices"]["start"]:
                self.flush()  # not consecutive: what is held goes on as it is
                held = self._datums.setdefault(doc["stream_resource"], [])
            held.append(doc)
        else:
            self.flush()
            self.downstream(name, doc)

    def flush(self) -> None:
        """Hand on what is held: merged StreamDatums, then the event pages."""
        datums, events = self._datums, self._events
        self._datums, self._events, self._held = {}, {}, 0
        for docs in datums.values():
            self.downstream(DocumentNames.stream_datum.value, concatenate_stream_datums(*docs))
        for docs in events.values():
            self.downstream(DocumentNames.event_page.value, pack_event_page(*docs))


def paged_writer(client: Any, batch_size: int) -> EventPager:
    """A TiledWriter (``batch_size`` rows or frames a write) behind an :class:`EventPager`
    of the same size, normalising with :class:`PagedRunNormalizer`."""
    return EventPager(TiledWriter(client, batch_size=batch_size,
                                  normalizer=PagedRunNormalizer), batch_size)
