"""Catalog search at scale: ``find_phases`` (what ``specflow phases`` runs) latency, p50 and
p95, over N annotated runs in the embedded Tiled server (loopback HTTP, server and client in
one process), with the catalog in SQLite and in PostgreSQL.

Runs are metadata only (no arrays): each has a ``start`` document and a published
``specflow`` block shaped like the annotator's (phases, transition onset/end, model,
identified phases). About 20 % have no transition. The catalog is grown from the smaller N to
the larger one and every query is timed at both sizes in one run; the ratio column compares
them. On PostgreSQL the larger size is timed again after ``specflow admin create-indexes``
(:mod:`specflow.annotate.indexes`). PostgreSQL is a throwaway local server
(:mod:`specflow.servers.postgres`, fsync off), not a tuned facility instance.

    python benchmarks/search.py --quick      # 1,000 and 3,000 runs
    python benchmarks/search.py              # 1,000 and 10,000 runs
    python benchmarks/search.py --backend sqlite
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from tiled.queries import Key, KeyPresent

from specflow.annotate import find_phases, search
from specflow.annotate.indexes import create_indexes
from specflow.servers.postgres import postgres_server
from specflow.servers.tiled import tiled_server

OUT = Path(__file__).parent / "results"
SAMPLES = {"Fe": ("Fe bcc (Im-3m)", "Fe hcp (P6_3/mmc)"),
           "FeO": ("FeO B1 (Fm-3m)", "FeO rB1 (R-3m)"),
           "NaCl": ("NaCl B1 rocksalt (Fm-3m)", "NaCl B2 CsCl-type (Pm-3m)"),
           "ZnO": ("ZnO B4 wurtzite (P6_3mc)", "ZnO B1 rocksalt (Fm-3m)")}
QUERIES = {
    "onset 10-15 GPa": {"onset_between": (10.0, 15.0)},
    "sample = Fe": {"sample": "Fe"},
    "model version 3": {"model_version": 3},
    "identified 'Fe hcp' above 20 GPa": {"identified": "Fe hcp", "above": 20.0},
    "phase 2 present (most runs)": {"phase": 2},
    "onset 10-15, whole metadata (baseline)": {"onset_between": (10.0, 15.0), "whole": True},
}


def run_metadata(i: int, rng: np.random.Generator) -> dict:
    """A run's start document and published specflow block (the annotator's shape)."""
    sample = list(SAMPLES)[i % len(SAMPLES)]
    low, high = SAMPLES[sample]
    top = float(rng.uniform(8, 60))
    block: dict = {"latest": "phase-model-v1", "model": {"name": "specflow-phase",
                                                         "version": int(rng.integers(1, 4))}}
    if rng.random() < 0.2:  # no transition in range
        block |= {"phases": [0], "transition": {}}
        named = {"before": {"name": low, "pressure_min": 0.0, "pressure_max": top}}
    else:
        onset = float(rng.uniform(5, min(40, top - 2)))
        end = onset + float(rng.uniform(1, 4))
        block |= {"phases": [0, 1, 2],
                  "transition": {"onset_pressure": onset, "onset_uncertainty": 0.3,
                                 "end_pressure": end, "end_uncertainty": 0.4}}
        named = {"before": {"name": low, "pressure_min": 0.0, "pressure_max": onset},
                 "after": {"name": high, "pressure_min": end, "pressure_max": top}}
    block["identified"] = {"library_version": "2b81a20c5c9b", "method": "raw",
                           "names": [v["name"] for v in named.values()],
                           **{k: named.get(k) for k in ("before", "during", "after")}}
    return {"start": {"uid": f"run{i:06d}", "sample": sample, "scan_id": i},
            "specflow": block}


def populate(client, start: int, stop: int, rng: np.random.Generator) -> float:
    """Create runs ``start``..``stop``; returns runs per second."""
    t0 = time.perf_counter()
    for i in range(start, stop):
        client.create_container(f"run{i:06d}", metadata=run_metadata(i, rng))
    return (stop - start) / (time.perf_counter() - t0)


def whole_metadata(client, onset_between: tuple[float, float]) -> list:
    """The same onset search read the plain way (every run's whole metadata, pages of 100):
    the baseline of find_phases' trimmed, 300-run pages."""
    lo, hi = onset_between
    hits = search(client, KeyPresent("specflow.latest"),
                  Key("specflow.transition.onset_pressure") >= lo,
                  Key("specflow.transition.onset_pressure") <= hi)
    return [node.metadata for _, node in hits.items()]


def latency(client, kwargs: dict, repeats: int) -> tuple[float, float, int]:
    """(p50 ms, p95 ms, hits) of find_phases(client, **kwargs)."""
    times, hits = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        if kwargs.get("whole"):
            hits = len(whole_metadata(client, kwargs["onset_between"]))
        else:
            hits = len(find_phases(client, **kwargs))
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), hits


def measure(client, sizes: list[int], repeats: int, rng: np.random.Generator,
            after_largest=None) -> dict[str, dict]:
    """Grow the catalog through ``sizes`` and time every query at each size;
    ``after_largest()`` (e.g. creating indexes) runs before a final, extra timing."""
    results: dict[str, dict] = {}
    done = 0
    for n in sizes:
        rate = populate(client, done, n, rng)
        done = n
        print(f"{n} runs in the catalog (created at {rate:.0f} runs/s)", flush=True)
        stages = [str(n)] + (["indexed"] if after_largest and n == sizes[-1] else [])
        for stage in stages:
            if stage == "indexed":
                after_largest()
            for name, kwargs in QUERIES.items():
                p50, p95, hits = latency(client, kwargs, repeats)
                results.setdefault(name, {})[stage] = {"p50_ms": p50, "p95_ms": p95,
                                                       "hits": hits}
    return results


def report(backend: str, results: dict, sizes: list[int], repeats: int) -> None:
    small, large = (str(n) for n in sizes)
    print(f"\nfind_phases latency, embedded Tiled ({backend}), {repeats} repeats")
    indexed = any("indexed" in row for row in results.values())
    head = f"{'query':<36} {'hits':>12} {'p50 ms':>18} {'p95 ms':>18} {'p50 ratio':>10}"
    print(head + (f" {'indexed p50':>12} {'ratio':>6}" if indexed else ""))
    for name, row in results.items():
        a, b = row[small], row[large]
        line = (f"{name:<36} {a['hits']:>5} → {b['hits']:<5} {a['p50_ms']:>7.0f} → "
                f"{b['p50_ms']:<7.0f} {a['p95_ms']:>7.0f} → {b['p95_ms']:<7.0f} "
                f"{b['p50_ms'] / a['p50_ms']:>9.1f}x")
        if indexed:
            c = row["indexed"]
            line += f" {c['p50_ms']:>12.0f} {b['p50_ms'] / c['p50_ms']:>5.2f}x"
        print(line)
    print(f"(sizes {small} → {large} runs" + ("; indexed: the larger size after "
                                               "'specflow admin create-indexes')" if indexed
                                               else ")"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 and 3,000 runs, 5 repeats")
    ap.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeats = [1000, 3000], 5
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    out: dict[str, dict] = {}
    for backend in backends:
        rng = np.random.default_rng(0)  # the same catalog on both backends
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                with tiled_server(tmp) as srv:
                    out[backend] = measure(srv.client(), args.sizes, args.repeats, rng)
            else:
                with postgres_server() as pg:
                    catalog = pg.create_database("tiled")
                    with tiled_server(tmp, catalog_uri=catalog,
                                      tables_uri=pg.create_database("tables")) as srv:
                        out[backend] = measure(srv.client(), args.sizes, args.repeats, rng,
                                               after_largest=lambda c=catalog:
                                               create_indexes(c))
        report(backend, out[backend], args.sizes, args.repeats)
    OUT.mkdir(exist_ok=True)
    name = f"search{'_quick' if args.quick else ''}.json"
    (OUT / name).write_text(json.dumps({"args": vars(args), "results": out}, indent=1))


if __name__ == "__main__":
    main()
