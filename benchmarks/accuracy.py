"""Accuracy benchmark (yardstick v3): will the promoted model label tomorrow's run correctly,
and at what pressure did it transform?

For each transition and seed, a family of simulated runs is split into 4 training runs (30
keV), 4 **cross-run** test runs (same preset, half at other beam energies) and 4 **shifted**
test runs (preset ``shifted``: 50–80 keV, broader Lorentzian lines and a 2θ calibration
error — conditions no training or corpus run ever had — and a Au/Pt marker in every run,
which the default corpus draws in two of three runs). Every method sees the
same class-blind labels (``--label-fraction`` of each training run, evenly spaced) and is
scored on the same curves, decoded along each run:

* **default**: ``PhaseClassifier()`` — the network trained on the transition's simulated
  corpus (cached, seeds ≥ 1,000,000), its head adapted to the labels; and the same model
  with **zero labels**;
* **previous default** (paired): the same model when its network was trained with line
  broadening of up to 3 bins in its augmentation (``augmentation="instrument"``;
  ``--no-previous-default`` skips it);
* **fraction head** (paired, ``--fraction-head W``): the default network trained with the
  training-only head that reads each corpus curve's high-phase fraction, loss weight W;
* **both broadening laws** (paired, ``--both-broadening-laws``): the default network trained
  on a corpus whose runs each draw their pressure broadening: the same width at every angle
  (the default's) or microstrain broadening growing with the angle
  (``CorpusRecipe(..., broadening="any")``);
* **controls**: pressure only, nearest labelled neighbour, raw curves and the untrained
  encoder under a linear probe (labels only, no corpus);
* **ceiling**: the ideal observer (knows phases, texture, nuisances and true pressure;
  fits the fraction, thresholds it like the labeller; :mod:`specflow.simulator.observer`).

Numbers are means over seeds ± the half-width of a 95 % t-interval; ``paired`` tables give
default − control per seed (same runs, same labels) with its interval. ``--split val``
(seeds 100+) is for choices, ``--split test`` (seeds 0+) for the reported tables.

    python benchmarks/accuracy.py --quick                  # 5 transitions × 10 seeds
    python benchmarks/accuracy.py --methods raw untrained  # + corpus heads on those features
    python benchmarks/accuracy.py --no-marker-corpus       # + the corpus without markers
    python benchmarks/accuracy.py --transitions FeO-v2     # FeO as simulated before v3
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from specflow.learn.corpus_model import corpus_network, corpus_training
from specflow.learn.evaluate import evaluate_datasets
from specflow.learn.metrics import mean_interval, paired_difference
from specflow.learn.names import METHOD_NAMES, SSL_METHODS
from specflow.learn.pretrain import load_checkpoint
from specflow.simulator.corpus import CorpusRecipe, build_corpus
from specflow.simulator.phases import feo_rhombohedral
from specflow.simulator.simulate import BEAMLINE_ENERGIES, simulate_family
from specflow.simulator.transitions import TRANSITIONS

TRAIN_ENERGY = 30.0
PROTOCOLS = ("cross_run", "shifted", "within_run")
NO_MARKER = "corpus without marker"
PREVIOUS = "previous default (broadening ≤ 3 bins)"
FRACTION = "fraction head"
BOTH_LAWS = "corpus of both broadening laws"
# rows of earlier runs, so that --merge prints their JSON: the previous default of the
# 60-run networks (accuracy_v5) and the instrument-wide pairing (accuracy_v8_pairing)
LEGACY = ("previous default (60 runs, 1,500 steps)", "wider broadening (instrument-wide)")
# the default model trained otherwise, paired
ALTERNATIVES = (NO_MARKER, PREVIOUS, FRACTION, BOTH_LAWS, *LEGACY)
CONTROLS = ("pressure", "neighbour", "raw", "untrained")
USER_METRICS = (("onset_error_gpa", "onset GPa", 1, 2), ("end_error_gpa", "end GPa", 1, 2),
                ("boundary_error_curves", "bound. crv", 1, 1),
                ("accuracy_outside_boundaries", "acc ±2", 100, 1))
CLASS_METRICS = (("precision", "P", 100, 1), ("recall", "R", 100, 1),
                 ("during_recall", "R1", 100, 1), ("ece", "ECE", 100, 1))


def register_legacy_feo() -> None:
    """``FeO-v2``: FeO as simulated before v3 — the rB1 distortion from a fixed 15 GPa
    whatever the loading's onset, its own texture, labels by phase fraction alone — so the
    tables can show FeO before and after the fix."""
    feo = TRANSITIONS["FeO"]
    TRANSITIONS["FeO-v2"] = replace(feo, name="FeO-v2", high=feo_rhombohedral(15.0, 0.0, 1.5e-3),
                                    high_at_onset=None, inherits_texture=False,
                                    labels_by_sight=False)


def family(transition: str, seed: int, n_train: int, n_test: int, curves: tuple[int, int],
           n_shifted: int = 0) -> tuple[dict, dict, dict]:
    """Training runs at TRAIN_ENERGY; cross-run test runs alternating that energy and
    another; shifted test runs."""
    train = simulate_family(transition, n_train, n_curves=curves, seed=seed,
                            energy_kev=TRAIN_ENERGY)
    other = [e for e in BEAMLINE_ENERGIES if e != TRAIN_ENERGY]
    test, shifted = {}, {}
    for i in range(n_test):
        energy = TRAIN_ENERGY if i % 2 == 0 else other[(seed + i) % len(other)]
        run = simulate_family(transition, 1, n_curves=curves, seed=seed * 1000 + 500 + i,
                              energy_kev=energy)[0]
        test[f"test{i}@{energy:g}keV"] = run
    for i in range(n_shifted):
        run = simulate_family(transition, 1, n_curves=curves, seed=seed * 1000 + 700 + i,
                              preset="shifted")[0]
        shifted[f"shifted{i}@{run.attrs['energy']:.0f}keV"] = run
    return {f"train{i}": r for i, r in enumerate(train)}, test, shifted


def fmt(values: list[float | None], scale: float, digits: int) -> str:
    mean, half = mean_interval([v * scale for v in values if v is not None])
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" + (f"±{half:.{digits}f}" if np.isfinite(half) else "")


def rows_of(cells: dict, protocol: str, args: argparse.Namespace) -> dict[str, dict]:
    """Row name -> transition -> list over seeds of the protocol's overall metrics."""
    rows: dict[str, dict[str, list[dict]]] = {}

    def add(row: str, t: str, m: dict | None) -> None:
        if m is not None:
            rows.setdefault(row, {}).setdefault(t, []).append(m)

    for (t, _seed), cell in cells.items():
        def score(who: str, cell: dict = cell) -> dict | None:
            return _overall(cell, protocol, who)

        add(f"default ({cell['default']['method']}), {args.label_fraction:.0%} labels", t,
            score("default"))
        add("default, zero labels", t, score("zero labels"))
        for alt in ALTERNATIVES:
            add(f"{alt}, {args.label_fraction:.0%} labels", t, score(alt))
        for name in cell.get("methods", {}):
            add(f"corpus head on {METHOD_NAMES.get(name, name)}"
                + (" (corpus-pretrained)" if name in SSL_METHODS else ""), t,
                score(f"head:{name}"))
        for control in CONTROLS:
            add(f"  control: {METHOD_NAMES[control]}", t, score(control))
        add("ceiling: ideal observer", t, score("ceiling"))
    return rows


def print_table(cells: dict, protocol: str, metrics: tuple, title: str,
                args: argparse.Namespace) -> None:
    rows = rows_of(cells, protocol, args)
    if not rows:
        return
    width = max(11 * len(metrics), 24)
    print(f"\n## {protocol.replace('_', '-')}: {title}; mean ± 95 % CI over seeds "
          f"{args.seed_list}")
    print(f"{'method':<44}" + "".join(f"| {t:<{width - 2}}" for t in args.transitions))
    print(f"{'':<44}" + "".join("| " + " ".join(f"{m[1]:>10}" for m in metrics) + " "
                                for _ in args.transitions))
    for row, per_t in rows.items():
        line = f"{row:<44}"
        for t in args.transitions:
            ms = per_t.get(t, [])
            line += "| " + " ".join(f"{fmt([m.get(k) for m in ms], s, d):>10}"
                                    for k, _, s, d in metrics) + " "
        print(line)


def _overall(cell: dict, protocol: str, who: str) -> dict | None:
    """One method's overall scores in a cell: ``default``, ``zero labels``, an alternative
    corpus, ``ceiling``, a control, or ``head:NAME`` (a corpus head of ``--methods``)."""
    block = cell["default"]["protocols"].get(protocol, {})
    if who == "default":
        return block.get("overall")
    if who == "ceiling":
        return block.get("ceiling")
    if who == "zero labels":
        return cell["zero"]["protocols"].get(protocol, {}).get("overall")
    if who in ALTERNATIVES:
        return cell.get(who, {}).get("protocols", {}).get(protocol, {}).get("overall")
    if who.startswith("head:"):
        res = cell.get("methods", {}).get(who[5:])
        return None if res is None else res["protocols"].get(protocol, {}).get("overall")
    return block.get("baselines", {}).get(who)


def _head_label(name: str) -> str:
    return f"head on {METHOD_NAMES.get(name, name)}"


def print_paired(cells: dict, protocol: str, args: argparse.Namespace) -> None:
    """Default − control (and − ceiling) per seed: accuracy (points) and onset error; then
    the corpus-pretrained SSL head − the other corpus heads and the controls."""
    heads = list(dict.fromkeys(m for c in cells.values() for m in c.get("methods", {})))
    others = [*CONTROLS, "zero labels",
              *[alt for alt in ALTERNATIVES if any(alt in c for c in cells.values())],
              *[f"head:{m}" for m in heads], "ceiling"]
    _paired_block(cells, protocol, args, "default", others)
    for m in [m for m in heads if m in SSL_METHODS]:
        _paired_block(cells, protocol, args, f"head:{m}",
                      [*(f"head:{h}" for h in heads if h != m), *CONTROLS])


def _paired_block(cells: dict, protocol: str, args: argparse.Namespace, mine_key: str,
                  others: list[str]) -> None:
    mine_name = "default" if mine_key == "default" else _head_label(mine_key[5:])
    print(f"\n## {protocol.replace('_', '-')}: paired differences, {mine_name} − other, "
          "per seed (same runs, same labels); accuracy in points, onset and end error in "
          f"GPa (negative: {mine_name} better); mean [95 % CI]")
    print(f"{mine_name + ' − ...':<34}" + "".join(f"| {t:<44}" for t in args.transitions))
    for other in others:
        line = f"{_head_label(other[5:]) if other.startswith('head:') else other:<34}"
        for t in args.transitions:
            a, b, oa, ob, ea, eb = [], [], [], [], [], []
            for (tt, _s), cell in cells.items():
                if tt != t:
                    continue
                mine, theirs = (_overall(cell, protocol, mine_key),
                                _overall(cell, protocol, other))
                if mine is None or theirs is None:
                    continue
                a.append(100 * mine["accuracy"])
                b.append(100 * theirs["accuracy"])
                oa.append(mine["onset_error_gpa"])
                ob.append(theirs["onset_error_gpa"])
                ea.append(mine["end_error_gpa"])
                eb.append(theirs["end_error_gpa"])
            acc, onset, end = (paired_difference(a, b), paired_difference(oa, ob),
                               paired_difference(ea, eb))
            line += "| " + " ".join(_interval(d, digits) for d, digits in
                                    ((acc, 1), (onset, 2), (end, 2))) + " "
        print(line)


def _interval(d: dict[str, Any], digits: int) -> str:
    if d["mean"] is None:
        return f"{'—':>13}"
    if d["low"] is None:
        return f"{d['mean']:+.{digits}f}".rjust(13)
    return f"{d['mean']:+.{digits}f}[{d['low']:+.{digits}f},{d['high']:+.{digits}f}]"


def report(cells: dict, args: argparse.Namespace) -> None:
    """Every protocol's tables: user metrics, class metrics, paired differences."""
    for protocol in PROTOCOLS:
        print_table(cells, protocol, USER_METRICS,
                    "onset / end error (GPa), boundary error (curves), accuracy outside ±2 "
                    "curves of a true boundary (%)", args)
        print_table(cells, protocol, CLASS_METRICS,
                    "weighted precision / recall (= accuracy), during recall, ECE (%)", args)
        print_paired(cells, protocol, args)


def load_cells(paths: list[str]) -> dict[tuple[str, int], dict]:
    """Cells of several ``--json`` outputs, gzipped or not (a seed run twice: the later
    file's)."""
    cells = {}
    for path in paths:
        with (gzip.open if str(path).endswith(".gz") else open)(path, "rt") as f:
            for key, cell in json.load(f).items():
                t, seed = key.rsplit("/", 1)
                cells[(t, int(seed))] = cell
    return dict(sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="Fe FeO Si KCl ZnO, 10 seeds, runs of 100–160 curves")
    ap.add_argument("--split", choices=("val", "test"), default="test")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--transitions", nargs="+", default=["Fe", "FeO", "Si", "KCl", "ZnO"])
    ap.add_argument("--methods", nargs="*", default=[],
                    help="also: a linear head on these features fitted on the corpus")
    ap.add_argument("--ssl-checkpoint", default=None,
                    help="also: a corpus head on this pretrained SSL encoder (its method's "
                         "row); e.g. the encoder pretrained on the multi-transition corpus")
    ap.add_argument("--no-marker-corpus", action="store_true",
                    help="also: the default model on a corpus with no marker in any run "
                         "(the default before corpus runs drew their marker), paired")
    ap.add_argument("--no-previous-default", action="store_true",
                    help="skip the paired row of the previous default corpus network "
                         "(augmentation broadening lines by up to 3 bins)")
    ap.add_argument("--fraction-head", type=float, default=None, metavar="W",
                    help="also: the default network trained with the fraction head's loss "
                         "weighted W, paired")
    ap.add_argument("--both-broadening-laws", action="store_true",
                    help="also: the default network trained on a corpus whose runs draw "
                         "constant or strain-law line broadening, paired")
    ap.add_argument("--train-runs", type=int, default=4)
    ap.add_argument("--test-runs", type=int, default=4)
    ap.add_argument("--shifted-runs", type=int, default=4)
    ap.add_argument("--curves", type=int, nargs=2, default=(120, 220))
    ap.add_argument("--corpus-runs", type=int, default=CorpusRecipe.runs)
    ap.add_argument("--label-fraction", type=float, default=0.03)
    ap.add_argument("--no-ceiling", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--first-seed", type=int, default=None,
                    help="start at this seed instead of the split's first (to share the "
                         "seeds between processes; --merge prints their tables together)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="print the tables of these --json outputs together (nothing run)")
    args = ap.parse_args()
    if args.merge:
        cells = load_cells(args.merge)
        args.seed_list = sorted({s for _, s in cells})
        args.transitions = [t for t in args.transitions if any(t == tt for tt, _ in cells)]
        report(cells, args)
        return
    if "FeO-v2" in args.transitions:
        register_legacy_feo()
    if args.quick:
        args.curves = (100, 160)
    base = args.first_seed if args.first_seed is not None else (
        100 if args.split == "val" else 0)
    args.seed_list = list(range(base, base + args.seeds))
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")
    t_start = time.perf_counter()
    corpora: dict[str, Any] = {}
    alternatives: dict[str, dict[str, tuple[Any, Any]]] = {}
    for t in args.transitions:
        t0 = time.perf_counter()
        corpus = build_corpus(CorpusRecipe.for_transition(t, runs=args.corpus_runs))
        net = corpus_network(corpus, device=args.device)
        corpora[t] = corpus
        alt = alternatives.setdefault(t, {})
        if args.no_marker_corpus:
            alt[NO_MARKER] = (build_corpus(CorpusRecipe.for_transition(
                t, runs=args.corpus_runs, marker=None)), None)
        if not args.no_previous_default:
            alt[PREVIOUS] = (corpus, corpus_training(augmentation="instrument"))
        if args.fraction_head:
            alt[FRACTION] = (corpus, corpus_training(fraction_weight=args.fraction_head))
        if args.both_broadening_laws:
            alt[BOTH_LAWS] = (build_corpus(CorpusRecipe.for_transition(
                t, runs=args.corpus_runs, broadening="any")), None)
        for other, training in alt.values():
            corpus_network(other, training, device=args.device)
        print(f"{t}: corpus {len(corpus)} curves of {args.corpus_runs} runs "
              f"(simulated in {corpus.seconds:.0f} s), network trained in {net.seconds:.0f} s "
              f"({time.perf_counter() - t0:.0f} s here)", flush=True)
    ssl = load_checkpoint(args.ssl_checkpoint) if args.ssl_checkpoint else None
    cells: dict[tuple[str, int], dict] = {}
    for seed in args.seed_list:
        for t in args.transitions:
            t0 = time.perf_counter()
            data, test, shifted = family(t, seed, args.train_runs, args.test_runs,
                                         tuple(args.curves), args.shifted_runs)
            common = dict(corpus=corpora[t], seed=seed, device=args.device,
                          extra={"shifted": shifted})
            cell = {"default": evaluate_datasets(
                data, test, label_fraction=args.label_fraction, baselines=CONTROLS,
                ceiling=not args.no_ceiling, **common)}
            cell["zero"] = evaluate_datasets(data, test, label_fraction=0, **common)
            for name, (other, training) in alternatives[t].items():
                cell[name] = evaluate_datasets(
                    data, test, label_fraction=args.label_fraction,
                    corpus_training=training, **{**common, "corpus": other})
            cell["methods"] = {m: evaluate_datasets(data, test, method=m,
                                                    label_fraction=args.label_fraction,
                                                    **common)
                               for m in args.methods}
            if ssl is not None:
                cell["methods"][ssl.config.method] = evaluate_datasets(
                    data, test, method=ssl.config.method, encoder=ssl.encoder,
                    label_fraction=args.label_fraction, **common)
            cells[(t, seed)] = cell
            o = cell["default"]["overall"]
            sh = cell["default"]["protocols"]["shifted"]["overall"]
            ceil = cell["default"].get("ceiling", {}).get("accuracy")
            print(f"{t:>5} seed {seed:>3}: cross {100 * o['accuracy']:.1f} % onset "
                  f"{o['onset_error_gpa']:.2f} end {o['end_error_gpa']:.2f} GPa | shifted "
                  f"{100 * sh['accuracy']:.1f} % | zero "
                  f"{100 * cell['zero']['overall']['accuracy']:.1f} % | ceiling "
                  f"{'—' if ceil is None else f'{100 * ceil:.1f} %'} | "
                  f"{time.perf_counter() - t0:.0f} s (total "
                  f"{(time.perf_counter() - t_start) / 60:.1f} min)", flush=True)
    report(cells, args)
    print(f"\ntotal {(time.perf_counter() - t_start) / 60:.1f} min")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{t}/{s}": cell for (t, s), cell in cells.items()}, f, indent=1,
                      default=lambda v: v.item() if hasattr(v, "item") else str(v))


if __name__ == "__main__":
    main()
