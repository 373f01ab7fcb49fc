"""A sample the library has no phase of: does identification name the right structure type?

For each built-in transition, every library phase made only of its elements is removed
(Fe, FeO, O, ... for FeO); simulated runs of the transition (realistic preset) are then
identified per true segment (before, after) by the library matcher with the sample's
elements known (``elements="auto"``), which ranks candidates generated for those elements
(the bundled prototypes with the elements put in,
:func:`~specflow.identify.reference.candidate_library`) together with the library's other
compositions. A hit: a candidate in the true
phase's structure type (its group in the full default library) first (top-1) or among the
first five (top-5); "best score": the median over segments of the first candidate's score.
Control: the same library without generation (the whole library
ranked, other compositions); for reference, the full library.

    python benchmarks/leave_element_out.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from specflow.identify.matching import LibraryMatcher
from specflow.identify.reference import ReferenceLibrary, default_library
from specflow.simulator.simulate import simulate_family
from specflow.simulator.transitions import TRANSITIONS, get_transition

OUT = Path(__file__).parent / "results"


def hits(matcher: LibraryMatcher, ds, groups: dict[str, str], truth: dict[str, str]
         ) -> dict[str, dict[str, float]]:
    """Per true segment: top-1/top-5 structure-type hits."""
    labels = ds["true_label"].values if "true_label" in ds else ds["label"].values
    result = matcher.identify_run(ds, labels=labels, top=5, elements="auto")
    if result.get("generated"):
        groups = groups | {e.name: e.prototype for e in
                           matcher.generated(result["no_phase_of"]).library_.entries}
    out = {}
    for segment, want in truth.items():
        ranked = [groups.get(c["name"]) for c in result["segments"].get(segment, [])]
        if ranked:
            out[segment] = {"top1": float(ranked[0] == want), "top5": float(want in ranked),
                            "score": float(result["segments"][segment][0]["score"])}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--transitions", nargs="+", default=list(TRANSITIONS))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    full = default_library()
    groups = {e.name: e.prototype for e in full.entries}
    rows: dict[str, dict] = {}
    print(f"{'transition':<10} {'method':<34} {'top-1 %':>8} {'top-5 %':>8} "
          f"{'best score':>10} {'s':>5}")
    for name in args.transitions:
        t0 = time.perf_counter()
        transition = get_transition(name)
        elements = set().union(*(full.entries[full.index(phase.name)].elements
                                 for phase in (transition.low, transition.high)))
        truth = {"before": groups[transition.low.name], "after": groups[transition.high.name]}
        kept = ReferenceLibrary([e for e in full.entries if not e.elements <= elements])
        runs = simulate_family(name, args.runs, n_curves=(120, 200), seed=11)
        for label, matcher in (("full library", LibraryMatcher(full)),
                               ("element left out, generated", LibraryMatcher(kept)),
                               ("element left out, no generation",
                                LibraryMatcher(kept, generate=False))):
            found = [h for ds in runs for h in hits(matcher, ds, groups, truth).values()]
            cell = {k: 100 * float(np.mean([h[k] for h in found])) for k in ("top1", "top5")}
            cell["score"] = float(np.median([h["score"] for h in found]))
            rows[f"{name}/{label}"] = cell
            print(f"{name:<10} {label:<34} {cell['top1']:8.1f} {cell['top5']:8.1f} "
                  f"{cell['score']:10.3f} {time.perf_counter() - t0:5.0f}", flush=True)
    print(f"\nmean over {len(args.transitions)} transitions × {args.runs} runs × 2 segments")
    for label in ("full library", "element left out, generated",
                  "element left out, no generation"):
        cells = [v for k, v in rows.items() if k.endswith("/" + label)]
        print(f"{'all':<10} {label:<34} " + " ".join(
            f"{np.mean([c[k] for c in cells]):{w}.1f}" for k, w in
            (("top1", 8), ("top5", 8))) + f" {np.median([c['score'] for c in cells]):10.3f}")
    OUT.mkdir(exist_ok=True)
    (OUT / "leave_element_out.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
