"""Find annotated runs by their phase summary.

Plain Tiled client equivalent (note: ``CatalogOfBlueskyRuns.search`` rewrites every key not
starting with ``start.``/``stop.`` to ``start.<key>``, so call the generic search)::

    from tiled.client import from_uri
    from tiled.client.container import Container
    from tiled.queries import Key

    c = from_uri("http://127.0.0.1:8000", api_key="secret")
    hits = Container.search(c, Key("specflow.transition.onset_pressure") >= 10)
    hits = Container.search(hits, Key("specflow.transition.onset_pressure") <= 15)
    for uid, run in hits.items():
        print(uid, run.metadata["specflow"]["transition"]["onset_pressure"])

Sort on the client: Tiled on SQLite sorts metadata as text ("100" < "5").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from tiled.client.utils import handle_error
from tiled.queries import Contains, Key, KeyPresent

from specflow.data.schema import PHASE_NAMES
from specflow.ingest.catalog import parse_key_values, search

__all__ = ["PhaseRecord", "find_phases", "parse_key_values", "search"]

SEGMENTS = tuple(PHASE_NAMES.values())
#: What find_phases needs of each run, cut on the server (JMESPath): not the whole
#: start/stop documents, descriptors or structure.
SELECT = "{start: {sample: start.sample}, specflow: specflow}"
PAGE = 300  # Tiled 0.2's largest page


def matching_metadata(hits: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, trimmed metadata) of every node of a searched Tiled container, in pages of
    :data:`PAGE` with only the fields :class:`PhaseRecord` reads (one request per page)."""
    url = f"{hits.item['links']['search']}?page[offset]=0&page[limit]={PAGE}"
    extra = {**hits._queries_as_params, "fields": "metadata", "select_metadata": SELECT}
    while url is not None:
        # httpx replaces a URL's query with params=: carry the page/cursor over explicitly
        params = {**parse_qs(urlparse(url).query), **extra}
        page = handle_error(hits.context.http_client.get(url.split("?")[0],
                                                          params=params)).json()
        for item in page["data"]:
            md = item["attributes"]["metadata"] or {}
            yield item["id"], md.get("selected", md)  # select_metadata wraps its result
        url = page["links"].get("next")


@dataclass(frozen=True)
class PhaseRecord:
    """One annotated run as found in the catalog."""

    uid: str
    sample: str
    phases: list[int]
    onset_pressure: float | None
    onset_uncertainty: float | None
    end_pressure: float | None
    end_uncertainty: float | None
    model_version: int | None
    node: str | None
    identified: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, uid: str, md: Any) -> PhaseRecord:
        block = md.get("specflow") or {}
        tr = block.get("transition") or {}
        named = block.get("identified") or {}
        return cls(uid, str((md.get("start") or {}).get("sample") or ""),
                   list(block.get("phases") or []), tr.get("onset_pressure"),
                   tr.get("onset_uncertainty"), tr.get("end_pressure"),
                   tr.get("end_uncertainty"), (block.get("model") or {}).get("version"),
                   block.get("latest"),
                   {seg: named[seg] for seg in SEGMENTS if isinstance(named.get(seg), dict)})

    def shows(self, phase: str, above: float | None = None) -> bool:
        """A segment identified as ``phase`` (case-insensitive part of its name, e.g.
        ``"Fe hcp"``) whose pressures reach ``above`` GPa."""
        return any(phase.lower() in str(found.get("name", "")).lower()
                   and (above is None or (found.get("pressure_max") is not None
                                          and found["pressure_max"] >= above))
                   for found in self.identified.values())


def find_phases(client: Any, onset_between: tuple[float, float] | None = None,
                phase: int | None = None, sample: str | None = None,
                model_version: int | None = None, identified: str | None = None,
                above: float | None = None) -> list[PhaseRecord]:
    """Annotated runs of a Tiled catalog matching all given conditions.

    Parameters
    ----------
    client : tiled client node
        The catalog (``tiled.client.from_uri(...)``).
    onset_between : (float, float), optional
        Transition onset pressure range in GPa.
    phase : int, optional
        A phase that must be present (0, 1 or 2).
    sample : str, optional
        ``start.sample`` of the run.
    model_version : int, optional
        Only runs whose published summary comes from this model version.
    identified : str, optional
        A library phase identified in one of the run's segments (part of its name,
        case-insensitive, e.g. ``"Fe hcp"``); runs annotated with an identifier only.
    above : float, optional
        With ``identified``: that segment reaches at least this pressure (GPa).

    Returns
    -------
    list of PhaseRecord
        Sorted by onset pressure (runs without a transition last).

    Examples
    --------
    >>> find_phases(client, onset_between=(10, 15), sample="Fe")  # doctest: +SKIP
    >>> find_phases(client, identified="Fe hcp", above=20)  # doctest: +SKIP
    """

    queries: list[Any] = [KeyPresent("specflow.latest")]
    if onset_between is not None:
        lo, hi = sorted(onset_between)
        queries += [Key("specflow.transition.onset_pressure") >= lo,
                    Key("specflow.transition.onset_pressure") <= hi]
    if phase is not None:  # as text: Tiled's integer Contains fails on PostgreSQL (HTTP 500)
        queries.append(Contains("specflow.phases", str(int(phase))))
    if sample is not None:
        queries.append(Key("start.sample") == sample)
    if model_version is not None:
        queries.append(Key("specflow.model.version") == int(model_version))
    if identified is not None:  # the server narrows to identified runs, names match here
        queries.append(KeyPresent("specflow.identified.library_version"))
    hits = search(client, *queries)
    records = [PhaseRecord.from_metadata(uid, md) for uid, md in matching_metadata(hits)]
    if identified is not None:
        records = [r for r in records if r.shows(identified, above)]
    return sorted(records, key=lambda r: (r.onset_pressure is None, r.onset_pressure or 0.0,
                                          r.uid))
