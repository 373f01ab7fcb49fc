"""The figures of the docs, drawn from the stored benchmark results and one simulated run.

* ``methods_vs_ceiling.png``: per transition, accuracy on unseen runs (cross-run) and under
  shifted conditions — the default, zero labels, the four controls and the ideal observer —
  mean and 95 % interval over the test seeds of ``benchmarks/results/accuracy_v9*.json.gz``
  (the numbers of the accuracy table in docs/benchmarks.md, not new ones).
* ``contour_fe.png``: an unseen simulated Fe run (validation seed 600, realistic
  conditions) as a contour map, with its true labels and the labels and probabilities the
  default model gives with no hand labels.
* ``ssl_training_log.png``: the shipped SSL encoder's pretraining (benchmarks/ssl_budget.py),
  per epoch: the total loss and each pretext task's accuracy, from
  ``benchmarks/results/ssl_budget_history.jsonl``.

    python benchmarks/figures.py                 # writes docs/figures/
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from specflow.learn.metrics import mean_interval

ROOT = Path(__file__).resolve().parents[1]
RESULTS = [ROOT / "benchmarks/results" / name for name in (
    "accuracy_v9_seeds0-4.json.gz", "accuracy_v9_seeds5-9.json.gz", "accuracy_v9_kcl.json.gz")]
ROWS = [("default", "default, 3 % labels"), ("zero", "default, zero labels"),
        ("pressure", "control: pressure only"), ("neighbour", "control: nearest labelled"),
        ("raw", "control: raw curves"), ("untrained", "control: untrained encoder"),
        ("ceiling", "ceiling: ideal observer")]
PROTOCOLS = [("cross_run", "unseen runs"), ("shifted", "shifted conditions")]


def accuracies(paths: list[Path]) -> dict[tuple[str, str, str], list[float]]:
    """(transition, protocol, row) → per-seed accuracy (%)."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for path in paths:
        with gzip.open(path, "rt") as f:
            entries = json.load(f)
        for key, entry in entries.items():
            name = key.split("/")[0]
            for protocol, _ in PROTOCOLS:
                default = entry["default"]["protocols"][protocol]
                cells = {"default": default["overall"],
                         "zero": entry["zero"]["protocols"][protocol]["overall"],
                         "ceiling": default["ceiling"], **default["baselines"]}
                for row, _ in ROWS:
                    out.setdefault((name, protocol, row), []).append(
                        100 * cells[row]["accuracy"])
    return out


def methods_vs_ceiling(path: Path) -> Path:
    acc = accuracies(RESULTS)
    names = list(dict.fromkeys(k[0] for k in acc))
    fig = Figure(figsize=(4.2 * len(PROTOCOLS), 0.9 + 0.32 * len(names) * len(ROWS)))
    axes = fig.subplots(1, len(PROTOCOLS), sharey=True)
    colours = {"default": "C0", "zero": "C9", "ceiling": "k"}
    for ax, (protocol, title) in zip(axes, PROTOCOLS, strict=True):
        y = 0
        ticks, labels = [], []
        for name in names:
            for row, text in ROWS:
                m, h = mean_interval(acc[(name, protocol, row)])
                ax.errorbar(m, -y, xerr=h, fmt="o", ms=4, capsize=2,
                            color=colours.get(row, "0.55"))
                ticks.append(-y)
                labels.append(f"{name}: {text}")
                y += 1
            ax.axhline(-y + 0.5, color="0.85", lw=0.8)
            y += 0.5
        ax.set_title(f"{title} (mean, 95 % interval over seeds)", fontsize=9)
        ax.set_xlabel("per-curve accuracy (%)")
        ax.set_xlim(60, 101)
        ax.grid(axis="x", color="0.92")
    axes[0].set_yticks(ticks, labels, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def contour_fe(path: Path) -> Path:
    from specflow.learn.classifier import PhaseClassifier
    from specflow.plots import save_contour
    from specflow.simulator.simulate import draw_conditions, simulate_family, simulate_run_parts
    from specflow.simulator.transitions import get_transition

    mat = get_transition("Fe")
    rng = np.random.default_rng(600)
    conditions = draw_conditions(mat, "realistic", rng)
    run = simulate_run_parts(mat, int(rng.integers(150, 251)), seed=600, conditions=conditions,
                             start=max(0.5, conditions.transition(mat).onset - 6.0)).data
    unlabelled = [r.drop_vars("label") for r in simulate_family("Fe", 2, seed=500)]
    pred = PhaseClassifier().fit(unlabelled).predict(run)
    return save_contour(run, path, predicted=pred["label"].values,
                        probabilities=pred["probabilities"].values, y_axis="pressure",
                        title="unseen Fe run: true labels, and the default model's "
                              "with no hand labels")


def ssl_training_log(path: Path) -> Path:
    rows = [json.loads(line) for line in
            (ROOT / "benchmarks/results/ssl_budget_history.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in rows]
    fig = Figure(figsize=(8.4, 3.0))
    left, right = fig.subplots(1, 2)
    left.plot(epochs, [r["loss"] for r in rows], "o-", ms=3, color="k")
    left.set_title("total loss", fontsize=9)
    tasks = [("inter_acc", "same curve? (relational, inter)"),
             ("intra_acc", "which transform? (relational, intra)"),
             ("tmp_acc", "where in its run? (order bin)"),
             ("cont_acc", "which key? (MoCo, top-1)")]
    for key, text in tasks:
        right.plot(epochs, [100 * r[key] for r in rows], "o-", ms=3, label=text)
    right.set_title("pretext-task accuracy (%)", fontsize=9)
    right.set_ylim(0, 135)
    right.set_yticks(range(0, 101, 20))
    right.legend(fontsize=7, loc="upper center", ncol=2)
    for ax in (left, right):
        ax.set_xlabel("epoch (132 steps of 256 curves × 4 views)")
        ax.grid(color="0.92")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs/figures")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(methods_vs_ceiling(args.out / "methods_vs_ceiling.png"))
    print(contour_fe(args.out / "contour_fe.png"))
    print(ssl_training_log(args.out / "ssl_training_log.png"))


if __name__ == "__main__":
    main()
