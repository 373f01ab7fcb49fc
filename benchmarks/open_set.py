"""When should identification say "no library phase matches"? An open-set threshold for the
library matcher, chosen on some structure types and measured on others.

Queries are physics-augmented renders of library entries (as ``benchmarks/identify.py``
renders them), matched by :class:`~specflow.identify.matching.LibraryMatcher` against the
default library over the unknown-pressure strain window. For each query the best score
with its own entry in the library ("present") and the best score once every entry of its
structure type is removed ("absent": what a sample of a structure the library lacks
scores). Entries are split by structure type into a calibration half and a test half
(seeds 0–2): for each target false-accept rate the threshold is the lowest score at which
at most that share of the calibration half's absent queries would be accepted; on the test
half the table gives the false-accept rate (absent queries scoring at or above it), the
false-reject rate (present queries below it) and how often an accepted present query is
named right (top-1).

    python benchmarks/open_set.py --entries 60 --views 1      # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

from specflow.identify.matching import IdentifyConfig, LibraryMatcher
from specflow.identify.patterns import augmented_curves, q_grid
from specflow.identify.reference import default_library
from specflow.learn.metrics import mean_interval

OUT = Path(__file__).parent / "results"


def best_scores(matcher: LibraryMatcher, entries: np.ndarray, views: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Present and absent best scores and top-1 hits of augmented renders of ``entries``."""
    lib = matcher.library_
    idx = np.repeat(entries, views)
    sticks = [(lib.entries[i].q, lib.entries[i].intensity) for i in idx]
    x, covered = augmented_curves(sticks, q_grid(), IdentifyConfig().augmentation, rng,
                                  matcher.preprocessing(), with_coverage=True)
    scores = matcher.scores(x, covered)
    groups = lib.groups
    same = groups[None, :] == groups[idx][:, None]
    return {"present": scores.max(1), "absent": np.where(same, -np.inf, scores).max(1),
            "top1": scores.argmax(1) == idx}


def threshold_for(absent: np.ndarray, false_accept: float) -> float:
    """The lowest threshold accepting at most ``false_accept`` of the ``absent`` scores."""
    return float(np.quantile(absent, 1 - false_accept, method="higher")) + 1e-6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=200, help="queried entries per half")
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--false-accept", type=float, nargs="+", default=[0.05, 0.2, 0.5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    t0 = time.perf_counter()
    lib = default_library()
    matcher = LibraryMatcher(lib)
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        splitter = GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=seed)
        cal, test = next(splitter.split(np.zeros(len(lib)), groups=lib.groups))
        cal = np.sort(rng.choice(cal, min(args.entries, len(cal)), replace=False))
        test = np.sort(rng.choice(test, min(args.entries, len(test)), replace=False))
        c = best_scores(matcher, cal, args.views, rng)
        t = best_scores(matcher, test, args.views, rng)
        for target in args.false_accept:
            thr = threshold_for(c["absent"], target)
            accepted = t["present"] >= thr
            rows.append({"seed": seed, "target": target, "threshold": thr,
                         "false_accept": float(np.mean(t["absent"] >= thr)),
                         "false_reject": float(np.mean(~accepted)),
                         "top1_accepted": float(np.mean(t["top1"][accepted]))
                         if accepted.any() else float("nan"),
                         "top1_all": float(np.mean(t["top1"])),
                         "present_median": float(np.median(t["present"])),
                         "absent_median": float(np.median(t["absent"]))})
        print(f"seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nlibrary {lib.version} ({len(lib)} phases), {args.entries} entries × "
          f"{args.views} views per half; mean ± 95 % CI over seeds {args.seeds}")
    first = [r for r in rows if r["target"] == args.false_accept[0]]
    for key, label in (("top1_all", "top-1 of all present queries (%)"),
                       ("present_median", "median best score, present"),
                       ("absent_median", "median best score, absent")):
        scale = 100 if "(%)" in label else 1
        m, h = mean_interval([scale * r[key] for r in first])
        print(f"{label:<36} {m:7.3f} ± {h:.3f}" if scale == 1 else
              f"{label:<36} {m:7.1f} ± {h:.1f}")
    print(f"\n{'target false accept':>20} | {'threshold':>15} | {'false accept %':>14} | "
          f"{'false reject %':>14} | {'top-1 accepted %':>16}")
    for target in args.false_accept:
        sel = [r for r in rows if r["target"] == target]
        cells = []
        for key, scale, fmt in (("threshold", 1, "{:.3f} ± {:.3f}"),
                                ("false_accept", 100, "{:.1f} ± {:.1f}"),
                                ("false_reject", 100, "{:.1f} ± {:.1f}"),
                                ("top1_accepted", 100, "{:.1f} ± {:.1f}")):
            m, h = mean_interval([scale * r[key] for r in sel])
            cells.append(fmt.format(m, h))
        print(f"{target:>20.0%} | {cells[0]:>15} | {cells[1]:>14} | {cells[2]:>14} | "
              f"{cells[3]:>16}")
    OUT.mkdir(exist_ok=True)
    (OUT / "open_set.json").write_text(json.dumps({"args": vars(args), "rows": rows},
                                                  indent=1))


if __name__ == "__main__":
    main()
