"""Which annotation a run publishes, decided through a log that cannot race.

Tiled has no conditional metadata update: two annotators that read the run's summary, decide
and write it a few milliseconds apart would let the last writer win, even with an older
model version. Creating a node is the one compare-and-swap Tiled offers (all but one
creator of a key get 409), so each publication is an entry ``<run>/specflow_published/
<seq>`` holding the published block, and an annotator publishes by creating entry
``last + 1`` after deciding against entry ``last``. Losing that race means another
publication came first: the annotator reads it and decides again.

The run's metadata ``specflow`` block stays what catalog searches and ``specflow phases``
read; it is a copy of the log's last entry. Each publisher copies the last entry after its
own and checks that no newer entry appeared meanwhile, so whichever copy lands last is the
last entry's. (A publisher killed between its entry and its copy leaves the copy one
publication behind until the run is annotated again.)
"""

from __future__ import annotations

from typing import Any

from .writer import status_code

LOG = "specflow_published"


def _key(seq: int) -> str:
    return f"{seq:08d}"


class PublicationLog:
    """One run's log, as one annotation reads and extends it: the log's container is fetched
    (or created) once and kept, since it never moves; its entries are listed afresh on every
    :meth:`last`, since they do. Saves the container's fetch on every read after the first;
    a log that :meth:`last` found missing is created without looking again."""

    def __init__(self, run_base: Any) -> None:
        self.run_base = run_base
        self._node: Any = None

    def last(self) -> tuple[int, dict[str, Any] | None]:
        """The last entry: its sequence number and block (0 and None: nothing logged)."""
        if self._node is None:
            try:
                self._node = self.run_base[LOG]
            except KeyError:
                return 0, None
        entries = [(int(key), child) for key, child in self._node.items() if key.isdigit()]
        if not entries:
            return 0, None
        seq, child = max(entries, key=lambda entry: entry[0])
        return seq, dict(child.metadata["block"])

    def append(self, seq: int, block: dict[str, Any]) -> bool:
        """Create entry ``seq`` holding ``block``; False if another publisher created it
        first. Called after :meth:`last`, which fetched the log if it existed."""
        if self._node is None:  # none at the last look: create it (409: another did first)
            try:
                self._node = self.run_base.create_container(LOG, metadata={
                    "description": "specflow's published summaries in order; the run's "
                                   "'specflow' metadata copies the last one"})
            except Exception as exc:
                if status_code(exc) != 409:
                    raise
                self._node = self.run_base[LOG]
        try:
            self._node.create_container(_key(seq), metadata={"block": block})
        except Exception as exc:
            if status_code(exc) == 409:
                return False
            raise
        return True
