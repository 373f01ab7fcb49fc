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


def last_publication(run_base: Any) -> tuple[int, dict[str, Any] | None]:
    """The log's last entry: its sequence number and block (0 and None: nothing logged)."""
    try:
        log = run_base[LOG]
    except KeyError:
        return 0, None
    entries = [(int(key), child) for key, child in log.items() if key.isdigit()]
    if not entries:
        return 0, None
    seq, child = max(entries, key=lambda entry: entry[0])
    return seq, dict(child.metadata["block"])


def append_publication(run_base: Any, seq: int, block: dict[str, Any]) -> bool:
    """Create entry ``seq`` holding ``block``; False if another publisher created it first."""
    try:
        log = run_base[LOG]
    except KeyError:
        try:
            log = run_base.create_container(LOG, metadata={
                "description": "specflow's published summaries in order; the run's "
                               "'specflow' metadata copies the last one"})
        except Exception as exc:
            if status_code(exc) != 409:
                raise
            log = run_base[LOG]
    try:
        log.create_container(_key(seq), metadata={"block": block})
    except Exception as exc:
        if status_code(exc) == 409:
            return False
        raise
    return True
