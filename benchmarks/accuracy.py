"""Accuracy benchmark: will the promoted model label tomorrow's run correctly?

For each transition and seed, a family of realistic runs (simulator preset ``realistic``: every
run its own onset, counts, background, artefacts, grid) is split into training runs — all at
one beam energy — and held-out test runs, half at that energy and half at another. Each method
is pretrained on the training runs only (labels hidden), probed with ``--label-fraction`` of
their labels, decoded along each run, and scored

* **within-run** on the training runs' other curves (the paper's protocol), and
* **cross-run** on the test runs, which no step ever saw.

Every method shares the labels, decoding and scored curves with the controls (pressure only,
nearest labelled neighbour, raw curves, untrained encoder, and the released encoder when
``SPECFLOW_REFERENCE_DIR`` holds it). Seeds are split: ``--split val`` (seeds 100+) for
choosing settings, ``--split test`` (seeds 0+) for the reported table; numbers are means over
seeds ± the half-width of a 95 % t interval. The out-of-distribution score is scored too: per
test run, the median curve score of each transition's model on its own test runs against the
other transitions' test runs (AUROC).

    python benchmarks/accuracy.py --quick              # ≤ 30 min on 2 cores
    python benchmarks/accuracy.py --seeds 5 --transitions Fe FeO Si KCl ZnO --methods rr rrmoco
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import numpy as np

from specflow.data.simulate import BEAMLINE_ENERGIES, simulate_family
from specflow.learn.data import wavelength_of
from specflow.learn.evaluate import METHOD_NAMES, default_config, evaluate_datasets
from specflow.learn.metrics import auroc, mean_interval
from specflow.learn.predictor import PhasePredictor

TRAIN_ENERGY = 30.0


def family(transition: str, seed: int, n_train: int, n_test: int, curves: tuple[int, int]
           ) -> tuple[dict, dict, dict[str, bool]]:
    """Training runs at TRAIN_ENERGY; test runs alternating that energy and another one."""
    train = simulate_family(transition, n_train, n_curves=curves, seed=seed,
                            energy_kev=TRAIN_ENERGY)
    other = [e for e in BEAMLINE_ENERGIES if e != TRAIN_ENERGY]
    test, same_energy = {}, {}
    for i in range(n_test):
        energy = TRAIN_ENERGY if i % 2 == 0 else other[(seed + i) % len(other)]
        run = simulate_family(transition, 1, n_curves=curves, seed=seed * 1000 + 500 + i,
                              energy_kev=energy)[0]
        name = f"test{i}@{energy:g}keV"
        test[name], same_energy[name] = run, energy == TRAIN_ENERGY
    return {f"train{i}": r for i, r in enumerate(train)}, test, same_energy


def run_cell(args: argparse.Namespace, transition: str, seed: int, method: str,
             strategy: str, data: dict, test: dict, baselines: bool) -> dict[str, Any]:
    cfg = None
    if method not in ("raw", "untrained"):
        cfg = default_config(method, args.epochs, seed, args.device)
    t0 = time.perf_counter()
    res = evaluate_datasets(data, test, method=method, label_fraction=args.label_fraction,
                            seed=seed, device=args.device, config=cfg,
                            label_strategy=strategy, baselines=args.controls if baselines
                            else False, keep_model=True)
    res["seconds"] = time.perf_counter() - t0
    return res


def ood_scores(bundle: dict, runs: dict) -> list[float]:
    """Median per-curve OOD score of each run under the model in ``bundle``."""
    predictor = PhasePredictor(bundle)
    out = []
    for ds in runs.values():
        pred = predictor.predict(ds["intensity"].values, ds["two_theta"].values,
                                 wavelength_of(ds))
        out.append(float(np.median(pred["ood_score"])))
    return out


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal; "—" when there was nothing to score."""
    return "—" if value is None else f"{100 * value:.1f}"


def fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    mean, half = mean_interval([v * scale for v in values if v is not None])
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" + (f"±{half:.{digits}f}" if np.isfinite(half) else "")


def print_tables(results: dict, args: argparse.Namespace) -> None:
    order = {s: i for i, s in enumerate(args.strategies)}
    rows = sorted({(m, s) for (_, _, m, s) in results},
                  key=lambda r: (args.methods.index(r[0]), order[r[1]]))
    names = [f"{METHOD_NAMES.get(m, m)} [{s}]" for m, s in rows]
    for protocol in ("cross_run", "within_run"):
        print(f"\n## {protocol.replace('_', '-')}: weighted P / R, macro-F1, during recall "
              f"(%), onset error (GPa), ECE (%); mean ± 95 % CI over seeds {args.seed_list}")
        header = f"{'method':<40}" + "".join(
            f"| {t:<46}" for t in args.transitions)
        print(header)
        print(f"{'':<40}" + "".join(
            f"| {'P':>7} {'R':>7} {'F1m':>7} {'R1':>7} {'onset':>8} {'ECE':>5} "
            for _ in args.transitions))
        for (method, strategy), name in zip(rows, names, strict=True):
            # controls share the first method's labels (the first strategy): print them once
            first = (method, strategy) == rows[0]
            for control in ([None] + list(args.controls if first else [])):
                label = name if control is None else f"  control: {METHOD_NAMES[control]}"
                line = f"{label:<40}"
                for t in args.transitions:
                    cells = [results[(t, s, method, strategy)] for s in args.seed_list
                             if (t, s, method, strategy) in results]
                    metric = [_metrics(c, protocol, control) for c in cells]
                    metric = [m for m in metric if m is not None]
                    line += "| " + " ".join([
                        f"{fmt([m['precision'] for m in metric]):>7}",
                        f"{fmt([m['recall'] for m in metric]):>7}",
                        f"{fmt([m['macro_f1'] for m in metric]):>7}",
                        f"{fmt([m['during_recall'] for m in metric]):>7}",
                        f"{fmt([m['onset_error_gpa'] for m in metric], 1, 2):>8}",
                        f"{fmt([m.get('ece') for m in metric]):>5} ",
                    ])
                print(line)


def _metrics(cell: dict, protocol: str, control: str | None) -> dict | None:
    if control is None:
        return cell["overall"] if protocol == "cross_run" else cell["within_run"]["overall"]
    entry = cell.get("baselines", {}).get(control)
    if entry is None:
        return None
    return entry if protocol == "cross_run" else entry["within_run"]


def print_energy(results: dict, same: dict, args: argparse.Namespace) -> None:
    print("\n## cross-run recall (%) by test-run energy: same as training "
          f"({TRAIN_ENERGY:g} keV) vs another")
    for method, strategy in sorted({(m, s) for (_, _, m, s) in results}):
        line = f"{METHOD_NAMES.get(method, method) + ' [' + strategy + ']':<40}"
        for t in args.transitions:
            a, b = [], []
            for s in args.seed_list:
                cell = results.get((t, s, method, strategy))
                if cell is None:
                    continue
                for name, f in cell["files"].items():
                    (a if same[(t, s)][name] else b).append(f["recall"])
            line += f"| {t}: same {fmt(a)}  other {fmt(b)} "
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="3 transitions, SpecRRMoco, 5 seeds, short runs (≤ 30 min)")
    ap.add_argument("--split", choices=("val", "test"), default="test")
    ap.add_argument("--seeds", type=int, default=5, help="number of seeds")
    ap.add_argument("--transitions", nargs="+", default=["Fe", "FeO", "Si"])
    ap.add_argument("--methods", nargs="+", default=["rrmoco"])
    ap.add_argument("--controls", nargs="+",
                    default=["pressure", "neighbour", "raw", "untrained", "reference"])
    ap.add_argument("--strategies", nargs="+", default=["even"])
    ap.add_argument("--epochs", type=int, default=None, help="default: the device preset's")
    ap.add_argument("--train-runs", type=int, default=4)
    ap.add_argument("--test-runs", type=int, default=4)
    ap.add_argument("--curves", type=int, nargs=2, default=(150, 300))
    ap.add_argument("--label-fraction", type=float, default=0.03)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.quick:
        args.epochs = args.epochs or 6
        args.curves = (120, 220)
    base = 100 if args.split == "val" else 0
    args.seed_list = list(range(base, base + args.seeds))
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")

    results: dict[tuple, dict] = {}
    same: dict[tuple, dict[str, bool]] = {}
    models: dict[tuple, dict] = {}
    tests: dict[tuple, dict] = {}
    t_start = time.perf_counter()
    for seed in args.seed_list:
        for t in args.transitions:
            data, test, same[(t, seed)] = family(t, seed, args.train_runs, args.test_runs,
                                                 tuple(args.curves))
            tests[(t, seed)] = test
            for i, method in enumerate(args.methods):
                for j, strategy in enumerate(args.strategies):
                    res = run_cell(args, t, seed, method, strategy, data, test,
                                   baselines=i == 0 and j == 0)
                    models[(t, seed, method, strategy)] = res.pop("model")
                    results[(t, seed, method, strategy)] = res
                    o, w = res["overall"], res["within_run"]["overall"]
                    print(f"{t:>5} seed {seed:>3} {METHOD_NAMES[method]:>12} {strategy:>6}: "
                          f"cross P/R {pct(o['precision'])}/{pct(o['recall'])} "
                          f"onset {o['onset_error_gpa']:.2f} GPa | within P/R "
                          f"{pct(w['precision'])}/{pct(w['recall'])} | labels "
                          f"{res['labels_per_class']} | {res['seconds']:.0f} s "
                          f"(total {(time.perf_counter() - t_start) / 60:.1f} min)", flush=True)
                    for name, b in res.get("baselines", {}).items():
                        print(f"{'':>22}control {name:>9}: cross P/R "
                              f"{pct(b['precision'])}/{pct(b['recall'])} onset "
                              f"{b['onset_error_gpa']:.2f} | within R "
                              f"{pct(b['within_run']['recall'])}", flush=True)
    args.controls = [c for c in args.controls
                     if any(c in r.get("baselines", {}) for r in results.values())]
    print_tables(results, args)
    print_energy(results, same, args)

    print("\n## out-of-distribution: AUROC of the per-run score (median curve), own "
          "transition's test runs vs the other transitions' test runs")
    for (t, seed, method, strategy), bundle in sorted(models.items()):
        if len(args.transitions) < 2:
            break
        own = ood_scores(bundle, tests[(t, seed)])
        other = [v for u in args.transitions if u != t for v in ood_scores(bundle,
                                                                          tests[(u, seed)])]
        results[(t, seed, method, strategy)]["ood_auroc"] = auroc(np.array(own),
                                                                  np.array(other))
        results[(t, seed, method, strategy)]["ood_flagged"] = {
            "own": float(np.mean(np.array(own) > 1)), "other": float(np.mean(np.array(other) > 1))}
    for method, strategy in sorted({(m, s) for (_, _, m, s) in results}):
        cells = [results[k] for k in results if k[2:] == (method, strategy)]
        aucs = [c["ood_auroc"] for c in cells if "ood_auroc" in c]
        own = [c["ood_flagged"]["own"] for c in cells if "ood_flagged" in c]
        other = [c["ood_flagged"]["other"] for c in cells if "ood_flagged" in c]
        print(f"{METHOD_NAMES.get(method, method)} [{strategy}]: AUROC {fmt(aucs, 1, 3)}; "
              f"flagged (median > 1): own runs {fmt(own)} %, other transitions {fmt(other)} %")
    print(f"\ntotal {(time.perf_counter() - t_start) / 60:.1f} min")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"/".join(map(str, k)): v for k, v in results.items()}, f, indent=1,
                      default=lambda v: v.item() if hasattr(v, "item") else str(v))


if __name__ == "__main__":
    main()
