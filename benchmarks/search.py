"""Catalog search at scale: ``find_phases`` (what ``specflow phases`` runs) latency, p50 and
p95, over N annotated runs in the embedded Tiled server (SQLite catalog, loopback HTTP, server
and client in one process).

Runs are metadata only (no arrays): each has a ``start`` document and a published
``specflow`` block shaped like the annotator's (phases, transition onset/end, model,
identified phases). About 20 % have no transition. The catalog is grown from the smaller N to
the larger one and every query is timed at both sizes in one run; the last column is the
ratio. PostgreSQL is not measured: this machine has no PostgreSQL server.

    python benchmarks/search.py --quick      # 1,000 and 3,000 runs (~3 min)
    python benchmarks/search.py              # 1,000 and 10,000 runs
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from specflow.annotate import find_phases
from specflow.ingest import tiled_server

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


def latency(client, kwargs: dict, repeats: int) -> tuple[float, float, int]:
    """(p50 ms, p95 ms, hits) of find_phases(client, **kwargs)."""
    times, hits = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        hits = len(find_phases(client, **kwargs))
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 and 3,000 runs, 5 repeats")
    ap.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeats = [1000, 3000], 5
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, tiled_server(tmp) as srv:
        client = srv.client()
        done = 0
        for n in args.sizes:
            rate = populate(client, done, n, rng)
            done = n
            print(f"{n} runs in the catalog (created at {rate:.0f} runs/s)", flush=True)
            for name, kwargs in QUERIES.items():
                p50, p95, hits = latency(client, kwargs, args.repeats)
                results.setdefault(name, {})[str(n)] = {"p50_ms": p50, "p95_ms": p95,
                                                        "hits": hits}
    small, large = (str(n) for n in args.sizes)
    print(f"\nfind_phases latency, embedded Tiled (SQLite), {args.repeats} repeats")
    print(f"{'query':<36} {'hits':>12} {'p50 ms':>18} {'p95 ms':>18} {'p50 ratio':>10}")
    for name, row in results.items():
        a, b = row[small], row[large]
        print(f"{name:<36} {a['hits']:>5} → {b['hits']:<5} {a['p50_ms']:>7.0f} → "
              f"{b['p50_ms']:<7.0f} {a['p95_ms']:>7.0f} → {b['p95_ms']:<7.0f} "
              f"{b['p50_ms'] / a['p50_ms']:>9.1f}x")
    print(f"(sizes {small} → {large} runs)")
    OUT.mkdir(exist_ok=True)
    (OUT / f"search{'_quick' if args.quick else ''}.json").write_text(json.dumps(
        {"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
