"""Label-efficiency curves: accuracy against the share of labelled curves, every method.

For each transition and seed, the family of realistic runs of ``benchmarks/accuracy.py``
(training runs at one energy, held-out test runs at that energy and another) is labelled at
each ``--fractions`` (evenly spaced in acquisition order, class-blind: the same curves for
every method at one fraction and seed), and each method is scored in both protocols:

* SSL methods (``rrmoco`` …): pretrained once per transition and seed on the training runs
  (labels hidden), then the linear probe at each fraction;
* supervised models (``cnn`` … ``binned``, the paper's comparison): trained end to end on the
  labels at each fraction;
* controls with the same labels: pressure only, nearest labelled neighbour, raw curves,
  untrained encoder (and the released encoder when ``SPECFLOW_REFERENCE_DIR`` holds it).

Cells are weighted recall (%) on decoded labels, mean ± half-width of a 95 % t interval over
seeds; the boundary-ambiguity width (no labels used) is printed next to it. At 100 % labels
the within-run protocol has no curve left to score ("—"). ``--figure`` draws accuracy
against label fraction.

    python benchmarks/label_efficiency.py --quick                 # Fe, 5 seeds (≈ 60 min)
    python benchmarks/label_efficiency.py --transitions Fe FeO --figure docs/figures/le.png
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accuracy import family, fmt  # benchmarks/accuracy.py, beside this file

from specflow.learn.evaluate import evaluate_datasets
from specflow.learn.fitting import default_config
from specflow.learn.names import METHOD_NAMES, SSL_METHODS, SUPERVISED_METHODS
from specflow.learn.pretrain import pretrain

FRACTIONS = (0.01, 0.03, 0.1, 0.3, 1.0)
CONTROLS = ("pressure", "neighbour", "raw", "untrained", "reference")


def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Results keyed ``transition/seed/fraction/method`` (controls as ``control:<name>``)."""
    results: dict[str, dict[str, Any]] = {}
    t_start = time.perf_counter()
    for seed in args.seed_list:
        for t in args.transitions:
            data, test, _ = family(t, seed, args.train_runs, args.test_runs, tuple(args.curves))
            encoders = {}
            for m in args.methods:
                if m in SSL_METHODS:
                    t0 = time.perf_counter()
                    cfg = default_config(m, args.epochs, seed, args.device)
                    encoders[m] = (pretrain(list(data.values()), cfg).encoder,
                                   time.perf_counter() - t0)
            for fraction in args.fractions:
                for i, m in enumerate(args.methods):
                    enc, pre_s = encoders.get(m, (None, 0.0))
                    res = evaluate_datasets(
                        data, test, method=m, corpus=None, label_fraction=fraction,
                        seed=seed, device=args.device, encoder=enc,
                        baselines=tuple(args.controls) if i == 0 else False)
                    res["pretrain_seconds"] = pre_s
                    key = f"{t}/{seed}/{fraction:g}"
                    results[f"{key}/{m}"] = _cell(res)
                    for name, b in res.get("baselines", {}).items():
                        results[f"{key}/control:{name}"] = _cell(
                            {"overall": b, "within_run": {"overall": b["within_run"]}})
                    print(f"{t:>4} seed {seed} {100 * fraction:5.1f} % {m:>11}: cross R "
                          f"{_pct(res['overall']['recall'])} within R "
                          f"{_pct(res['within_run']['overall']['recall'])} | "
                          f"{res['n_labels']} labels | train {res['train_seconds']:.1f} s "
                          f"(total {(time.perf_counter() - t_start) / 60:.1f} min)", flush=True)
    return results


def _cell(res: dict) -> dict[str, Any]:
    o, w = res["overall"], res["within_run"]["overall"]
    return {"cross_recall": o["recall"], "cross_precision": o["precision"],
            "cross_ambiguity": res.get("per_curve", {}).get("ambiguity_width"),
            "within_recall": w["recall"], "within_precision": w["precision"],
            "n_labels": res.get("n_labels"), "train_seconds": res.get("train_seconds"),
            "pretrain_seconds": res.get("pretrain_seconds")}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def rows(results: dict) -> list[str]:
    """Methods then controls, in the order they were run."""
    seen: list[str] = []
    for key in results:
        name = key.split("/", 3)[3]
        if name not in seen:
            seen.append(name)
    return sorted(seen, key=lambda n: (n.startswith("control:"), seen.index(n)))


def label(name: str) -> str:
    if name.startswith("control:"):
        return f"control: {METHOD_NAMES.get(name[8:], name[8:])}"
    return f"{METHOD_NAMES.get(name, name)} [{kind(name)}]"


def kind(name: str) -> str:
    if name.startswith("control:"):
        return "control"
    return ("SSL + probe" if name in SSL_METHODS else
            "supervised" if name in SUPERVISED_METHODS else "probe")


def values(results: dict, t: str, fraction: float, name: str, metric: str) -> list[float]:
    return [c[metric] for k, c in results.items()
            if k.startswith(f"{t}/") and k.endswith(f"/{fraction:g}/{name}")
            and c.get(metric) is not None]


def print_tables(results: dict, args: argparse.Namespace) -> None:
    names = rows(results)
    for metric, title in (("cross_recall", "cross-run weighted recall (%)"),
                          ("within_recall", "within-run weighted recall (%)"),
                          ("cross_ambiguity", "cross-run boundary-ambiguity width of the "
                                              "per-curve argmax (% of a run's curves; no "
                                              "labels used)")):
        for t in args.transitions:
            print(f"\n## {t}: {title}; mean ± 95 % CI over seeds {args.seed_list}")
            print(f"{'method':<44}" + "".join(f"| {100 * f:>5g} % labels  "
                                              for f in args.fractions))
            for name in names:
                line = f"{label(name):<44}"
                for f in args.fractions:
                    line += f"| {fmt(values(results, t, f, name, metric)):>15} "
                print(line)


def print_costs(results: dict, args: argparse.Namespace) -> None:
    print(f"\n## training seconds per fit on this machine (mean over transitions, seeds; "
          f"{torch.get_num_threads()} threads); SSL: pretraining once + probe")
    print(f"{'method':<44}" + "".join(f"| {100 * f:>5g} %   " for f in args.fractions))
    for name in rows(results):
        if name.startswith("control:"):
            continue
        line = f"{label(name):<44}"
        for f in args.fractions:
            vals = [c["train_seconds"] + (c["pretrain_seconds"] or 0.0)
                    for k, c in results.items() if k.endswith(f"/{f:g}/{name}")]
            line += f"| {np.mean(vals):>8.1f} " if vals else f"| {'—':>8} "
        print(line)


def figure(results: dict, args: argparse.Namespace, path: Path) -> None:
    """Weighted recall against label fraction, cross-run and within-run, per transition."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * len(args.transitions), 7.5))
    axes = fig.subplots(2, len(args.transitions), squeeze=False, sharex=True)
    cmap = {"supervised": "tab:blue", "SSL + probe": "tab:red", "probe": "tab:green",
            "control": "0.4"}
    styles = ["-", "--", ":", "-."]
    for col, t in enumerate(args.transitions):
        for row, (metric, title) in enumerate((("cross_recall", "runs never seen (cross-run)"),
                                               ("within_recall", "within the runs"))):
            ax = axes[row][col]
            for i, name in enumerate(rows(results)):
                fr, mean, half = [], [], []
                for f in args.fractions:
                    v = values(results, t, f, name, metric)
                    if v:
                        fr.append(100 * f)
                        mean.append(100 * np.mean(v))
                        half.append(100 * np.std(v, ddof=1) / np.sqrt(len(v)) if len(v) > 1
                                    else 0.0)
                if not fr:
                    continue
                ax.errorbar(fr, mean, yerr=half, label=label(name), color=cmap[kind(name)],
                            ls=styles[i % len(styles)], marker="o", ms=3, lw=1, capsize=2,
                            alpha=0.85)
            ax.set_xscale("log")
            ax.set_title(f"{t}: {title}", fontsize=9)
            ax.set_ylabel("weighted recall (%)")
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("labelled curves (% of the training runs)")
    axes[0][0].legend(fontsize=6, ncol=2, loc="lower right")
    fig.suptitle(f"Label efficiency (mean ± s.e. over seeds {args.seed_list})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nfigure: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Fe only, short runs, 6 SSL epochs")
    ap.add_argument("--split", choices=("val", "test"), default="test")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="start at this seed of the split (to share a grid between processes)")
    ap.add_argument("--transitions", nargs="+", default=["Fe", "FeO"])
    ap.add_argument("--methods", nargs="+", default=[*SUPERVISED_METHODS, "rrmoco"])
    ap.add_argument("--controls", nargs="+", default=list(CONTROLS))
    ap.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    ap.add_argument("--epochs", type=int, default=None, help="SSL epochs (preset's default)")
    ap.add_argument("--train-runs", type=int, default=4)
    ap.add_argument("--test-runs", type=int, default=4)
    ap.add_argument("--curves", type=int, nargs=2, default=(150, 300))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--json", default=None, help="write the cells as JSON")
    ap.add_argument("--figure", default=None, help="write the figure (PNG)")
    ap.add_argument("--from-json", nargs="+", default=None,
                    help="print tables and figure from earlier --json files instead of running")
    args = ap.parse_args()
    if args.quick:
        args.transitions = ["Fe"] if args.transitions == ["Fe", "FeO"] else args.transitions
        args.epochs = args.epochs or 6
        args.curves = (120, 220)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = 100 if args.split == "val" else 0
    args.seed_list = list(range(base + args.first_seed, base + args.first_seed + args.seeds))
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    if args.from_json:
        results = {}
        for path in args.from_json:
            results.update(json.loads(Path(path).read_text()))
        args.transitions = sorted({k.split("/")[0] for k in results},
                                  key=lambda t: args.transitions.index(t)
                                  if t in args.transitions else 99)
        args.seed_list = sorted({int(k.split("/")[1]) for k in results})
        args.fractions = sorted({float(k.split("/")[2]) for k in results})
    else:
        t0 = time.perf_counter()
        results = run(args)
        print(f"\ntotal {(time.perf_counter() - t0) / 60:.1f} min")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    print_tables(results, args)
    print_costs(results, args)
    if args.figure:
        figure(results, args, Path(args.figure))


if __name__ == "__main__":
    main()
