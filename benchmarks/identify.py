"""Phase identification: top-1/top-5 on the leak-free (structure) split next to the random split,
and the right phase before and after each simulated transition.

For each split seed, a RegNet1D + AdaCos identifier is trained on the training entries of the
reference library and queried with fresh physics-augmented renders of the test entries, ranked
over the **whole** library. Control: the library matcher (cosine of the prepared curve to each
entry's clean render, best over a strain scan; no learning). Then simulated runs of the
built-in transitions (realistic preset, beam energies drawn per run) are identified per true
segment (before, during, after): is the true phase top-1 (top-5)? Each curve is matched within
the compression window its pressure gives; rows with elements 'known' rank only phases of the
sample's elements (``elements="auto"``). Runs are scored by the identifier trained on every
entry.

    python benchmarks/identify.py --quick          # ~25 min on 2 cores
    python benchmarks/identify.py                  # all 288 prototypes, 3 split seeds
    python benchmarks/identify.py --raw-only       # the control alone on that grid (minutes)
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from specflow.identify.matching import (
    IdentifyConfig,
    LibraryMatcher,
    PhaseIdentifier,
    evaluate_identifier,
    segment_hits,
    split_entries,
)
from specflow.identify.reference import build_library
from specflow.learn.metrics import mean_interval
from specflow.simulator.simulate import simulate_family
from specflow.simulator.transitions import TRANSITIONS

OUT = Path(__file__).parent / "results"


def pm(values: list[float]) -> str:
    mean, half = mean_interval(values)
    return f"{100 * mean:5.1f} ± {100 * half:4.1f}" if np.isfinite(half) else f"{100 * mean:5.1f}"


def split_table(library, args) -> dict:
    rows: dict[str, dict[str, list[float]]] = {}
    seconds = []
    for kind in ("structure", "random"):
        for seed in args.seeds:
            train, test = split_entries(library, kind, 0.15, seed)
            ident = None
            if not args.raw_only:
                ident = PhaseIdentifier(IdentifyConfig(steps=args.steps, seed=seed,
                                                       device="cpu"))
                ident.fit(library, train)
                seconds.append(ident.train_seconds_)
            scores = evaluate_identifier(ident, test, views=args.views, seed=100 + seed,
                                         library=library)
            for who in ("raw",) if args.raw_only else ("model", "raw"):
                row = rows.setdefault(f"{kind}/{who}", {"top1": [], "top5": []})
                row["top1"].append(scores[f"{who}_top1"])
                row["top5"].append(scores[f"{who}_top5"])
            print(f"  {kind} seed {seed}: {scores}", flush=True)
    return {"rows": rows, "train_seconds": seconds}


def run_table(library, args) -> dict:
    identifiers = {"raw": LibraryMatcher(library)}
    if not args.raw_only:
        identifiers["model"] = PhaseIdentifier(IdentifyConfig(steps=args.steps, seed=0,
                                                              device="cpu")).fit(library)
    out: dict[str, dict] = {}
    for material in args.transitions:
        runs = simulate_family(material, args.runs, n_curves=(120, 200), seed=args.run_seed)
        for who, identifier in sorted(identifiers.items()):
            for mode, elements in (("any", None), ("known", "auto")):
                hits: dict[str, dict[str, list[float]]] = {}
                for ds in runs:
                    for seg, found in segment_hits(identifier, ds, elements).items():
                        row = hits.setdefault(seg, {"top1": [], "top5": [], "both": []})
                        for key, value in found.items():
                            row[key].append(value)
                energies = sorted({round(float(ds.attrs.get("energy", 0)), 1) for ds in runs})
                pressures = [round(float(ds["pressure"].max()), 1) for ds in runs]
                out[f"{material}/{who}/{mode}"] = {"hits": hits, "energies": energies,
                                                   "max_pressure": pressures}
    return out


def method_label(key: str) -> str:
    """``Fe/raw/known`` → ``library cosine, elements known``."""
    _, who, mode = key.split("/")
    return f"{'RegNet1D+AdaCos' if who == 'model' else 'library cosine'}, elements {mode}"


def print_runs(runs: dict, args) -> None:
    print(f"\nsimulated runs ({args.runs} per transition, realistic preset, beam energy drawn "
          f"per run), true segments; elements 'known': only phases of the sample's elements")
    print(f"{'transition':<10} {'method':<32} {'before top-1':>13} {'after top-1':>12} "
          f"{'before top-5':>13} {'after top-5':>12} {'during: both in top-5':>22}")
    solved: dict[str, list[str]] = {}
    for key, res in runs.items():
        h = res["hits"]

        def cell(seg: str, k: str, h: dict = h) -> str:
            values = h.get(seg, {}).get(k, [])
            return f"{100 * np.mean(values):.0f} % ({len(values)})" if values else "—"

        print(f"{key.split('/')[0]:<10} {method_label(key):<32} {cell('before', 'top1'):>13} "
              f"{cell('after', 'top1'):>12} {cell('before', 'top5'):>13} "
              f"{cell('after', 'top5'):>12} {cell('during', 'both'):>22}")
        if all(h.get(seg, {}).get("top1") and min(h[seg]["top1"]) == 1.0
               for seg in ("before", "after")):
            solved.setdefault(method_label(key), []).append(key.split("/")[0])
    print("transitions where every run has the right phase top-1 before and after:")
    for method in sorted({method_label(k) for k in runs}):
        got = solved.get(method, [])
        print(f"  {method}: {len(got)} of {len(args.transitions)} {got}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="120 prototypes, 2 substitutions, "
                    "split seed 1, 800 steps")
    ap.add_argument("--prototypes", type=int, default=None)
    ap.add_argument("--substitutions", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                    help="split seeds (0 was used to choose the settings)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--transitions", nargs="+", default=list(TRANSITIONS))
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--run-seed", type=int, default=900)
    ap.add_argument("--raw-only", action="store_true", help="only the no-learning library "
                    "cosine (no training: minutes, so the full library and every seed fit)")
    args = ap.parse_args()
    if args.quick:
        args.prototypes, args.substitutions, args.seeds, args.steps = 120, 2, [1], 800
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    library = build_library(args.substitutions, 0, args.prototypes)
    build_s = time.perf_counter() - t0
    print(f"library: {len(library)} phases in {len(set(library.groups))} structure groups, "
          f"version {library.version}, built in {build_s:.0f} s", flush=True)
    splits = split_table(library, args)
    runs = run_table(library, args)
    print(f"\nidentification of held-out queries, ranked over all {len(library)} phases "
          f"(mean ± 95 % CI over split seeds {args.seeds}; {args.views} augmented views per "
          f"test phase; {args.steps} steps)")
    print(f"{'split':<10} {'method':<16} {'top-1 %':>14} {'top-5 %':>14}")
    for key, row in splits["rows"].items():
        kind, who = key.split("/")
        label = "RegNet1D+AdaCos" if who == "model" else "library cosine"
        print(f"{kind:<10} {label:<16} {pm(row['top1']):>14} {pm(row['top5']):>14}")
    if splits["train_seconds"]:
        print(f"training time on CPU: {np.mean(splits['train_seconds']):.0f} s per model")
    print_runs(runs, args)
    OUT.mkdir(exist_ok=True)
    name = "identify_quick" if args.quick else "identify"
    (OUT / f"{name}{'_raw' if args.raw_only else ''}.json").write_text(json.dumps(
        {"args": vars(args), "library": {"size": len(library), "version": library.version,
                                         "build_seconds": build_s},
         "splits": splits, "runs": runs}, indent=1, default=str))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
