"""Simulated training corpora: many domain-randomised runs of a transition, cached on disk.

A :class:`CorpusRecipe` names what to simulate (transitions, how many runs, their length, the
preset that randomises energy, grid, onset, width, counts, background and artefacts, a seed
range no benchmark uses); :func:`build_corpus` simulates it once, prepares every curve with a
model's :class:`~specflow.data.preprocess.Preprocessing` and keeps the result under the cache
directory (``$SPECFLOW_CACHE``, default ``~/.cache/specflow``), keyed by the recipe and the
preprocessing — the same recipe is never simulated twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specflow.data.preprocess import Preprocessing, prepare_curves
from specflow.simulator.artefacts import ANY_MARKER, MARKERS
from specflow.simulator.simulate import PRESETS, check_broadening, simulate_family
from specflow.simulator.transitions import get_transition

CORPUS_FORMAT = "specflow-corpus/1"
SIMULATOR_VERSION = "v3"  # bump when the simulator's physics change: old caches go stale
CORPUS_SEED = 1_000_000  # corpus runs never share seeds with benchmark runs (0–999, 100xxx)


def cache_dir() -> Path:
    """Where corpora (and the models trained on them) are cached: ``$SPECFLOW_CACHE``, else
    ``$XDG_CACHE_HOME/specflow``, else ``~/.cache/specflow``."""
    if os.environ.get("SPECFLOW_CACHE"):
        return Path(os.environ["SPECFLOW_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "specflow"


@dataclass(frozen=True)
class CorpusRecipe:
    """What a corpus holds: ``runs`` loadings of each of ``transitions`` (built-in names),
    ``curves`` per run drawn from the range, conditions from ``preset``, seeds from
    ``seed`` on; ``marker``: the pressure marker loaded with the sample — ``any`` (default:
    each run draws none, Au or Pt, as loadings differ), ``Au`` or ``Pt`` in every run when
    the user knows it, or None (no marker in any run); ``broadening``: how pressure widens
    the lines — ``constant`` (the same width at every angle) or ``any`` (each run draws that
    or microstrain broadening, which grows with the angle; see
    :data:`~specflow.simulator.simulate.BROADENING_LAWS`)."""

    transitions: tuple[str, ...]
    runs: int = 120
    curves: tuple[int, int] = (120, 220)
    preset: str = "realistic"
    seed: int = CORPUS_SEED
    simulator: str = SIMULATOR_VERSION
    marker: str | None = ANY_MARKER
    broadening: str = "constant"

    def __post_init__(self) -> None:
        names = (self.transitions,) if isinstance(self.transitions, str) else self.transitions
        object.__setattr__(self, "transitions",
                           tuple(get_transition(t).name for t in names))
        object.__setattr__(self, "curves", tuple(int(c) for c in self.curves))
        if not self.transitions:
            raise ValueError("a corpus needs at least one transition")
        if self.runs < 2 or not 2 <= self.curves[0] <= self.curves[1]:
            raise ValueError(f"a corpus needs ≥ 2 runs of ≥ 2 curves (got {self.runs} runs, "
                             f"curves {self.curves})")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; use one of {PRESETS}")
        if self.marker is not None and self.marker not in (*MARKERS, ANY_MARKER):
            raise ValueError(f"unknown pressure marker {self.marker!r}; use one of "
                             f"{[*MARKERS, ANY_MARKER]}")
        check_broadening(self.broadening)

    @classmethod
    def for_transition(cls, name: str, **kwargs: Any) -> CorpusRecipe:
        return cls(transitions=(name,), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        values = {**asdict(self), "transitions": list(self.transitions),
                  "curves": list(self.curves)}
        if self.marker is None:  # recipes without a marker keep their fingerprints
            del values["marker"]
        if self.broadening == "constant":  # and so do recipes of one broadening law
            del values["broadening"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CorpusRecipe:
        values = {"marker": None, **values}  # no marker key: a recipe without a marker
        return cls(transitions=tuple(values.pop("transitions")),
                   curves=tuple(values.pop("curves")), **values)

    def fingerprint(self, preprocessing: Preprocessing | None = None) -> str:
        """sha256 of the recipe (and the preprocessing its curves were prepared with)."""
        payload = {"recipe": self.to_dict(),
                   "preprocessing": preprocessing.to_dict() if preprocessing else None}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def name(self) -> str:
        return ("+".join(self.transitions) + (f"+{self.marker}" if self.marker else "")
                + ("" if self.broadening == "constant" else f"+broadening-{self.broadening}"))


#: Marker words a corpus text may hold (any case): a marker, ``any`` or ``none``
MARKER_WORDS: dict[str, str | None] = {**{m.casefold(): m for m in MARKERS},
                                       ANY_MARKER: ANY_MARKER, "none": None}


def recipe_from_text(text: str) -> CorpusRecipe:
    """The default recipe named by ``text``: built-in transitions and at most one marker
    word joined by ``+`` (``Fe``, ``Fe+FeO``, ``Fe+Au``, ``Fe+none``; any case); without one,
    the default (each run draws its marker)."""
    names = [t.strip() for t in str(text).split("+") if t.strip()]
    marker = [MARKER_WORDS[t.casefold()] for t in names if t.casefold() in MARKER_WORDS]
    transitions = tuple(t for t in names if t.casefold() not in MARKER_WORDS)
    if len(marker) > 1 or not transitions:
        raise ValueError(f"corpus {text!r}: give transitions and at most one marker joined "
                         f"by '+', e.g. Fe, Fe+FeO or Fe+Au (markers: {', '.join(MARKERS)}, "
                         f"or {ANY_MARKER} (default) or none)")
    return CorpusRecipe(transitions, marker=marker[0] if marker else ANY_MARKER)


@dataclass
class Corpus:
    """Prepared curves (N, G) of a recipe's runs with their truth: ``label`` (0/1/2),
    ``fraction`` (high-phase), ``pressure`` (recorded, GPa), ``run`` and ``order`` (index and
    acquisition rank), ``transition`` (index into the recipe's transitions)."""

    recipe: CorpusRecipe
    preprocessing: Preprocessing
    grid: np.ndarray
    x: np.ndarray
    label: np.ndarray
    fraction: np.ndarray
    pressure: np.ndarray
    run: np.ndarray
    order: np.ndarray
    transition: np.ndarray
    seconds: float = 0.0
    path: Path | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.x)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp, format=CORPUS_FORMAT, recipe=json.dumps(self.recipe.to_dict()),
            preprocessing=json.dumps(self.preprocessing.to_dict()), grid=self.grid,
            x=self.x.astype(np.float16), label=self.label, fraction=self.fraction,
            pressure=self.pressure, run=self.run, order=self.order,
            transition=self.transition, seconds=self.seconds)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> Corpus:
        with np.load(path, allow_pickle=False) as f:
            if str(f["format"]) != CORPUS_FORMAT:
                raise ValueError(f"{path} is not a specflow corpus ({f['format']})")
            return cls(
                recipe=CorpusRecipe.from_dict(json.loads(str(f["recipe"]))),
                preprocessing=Preprocessing.from_dict(json.loads(str(f["preprocessing"]))),
                grid=f["grid"], x=f["x"].astype(np.float32), label=f["label"],
                fraction=f["fraction"], pressure=f["pressure"], run=f["run"],
                order=f["order"], transition=f["transition"], seconds=float(f["seconds"]),
                path=path)


def corpus_path(recipe: CorpusRecipe, preprocessing: Preprocessing,
                directory: Path | None = None) -> Path:
    """The cache file of ``recipe`` prepared with ``preprocessing``."""
    fp = recipe.fingerprint(preprocessing)[:16]
    return (directory or cache_dir()) / "corpus" / f"{recipe.name}-{fp}.npz"


def build_corpus(recipe: CorpusRecipe, preprocessing: Preprocessing | None = None,
                 directory: Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Corpus:
    """The corpus of ``recipe`` prepared with ``preprocessing`` (default: the Q-grid
    default), from the cache when it holds it, else simulated (``progress(done, total)``
    after each run) and cached."""
    prep = preprocessing or Preprocessing()
    path = corpus_path(recipe, prep, directory)
    if path.exists():
        return Corpus.load(path)
    t0 = time.perf_counter()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "x", "label", "fraction", "pressure", "run", "order", "transition")}
    grid = prep.model_grid()
    total, done = recipe.runs * len(recipe.transitions), 0
    for t_index, name in enumerate(recipe.transitions):
        seed = recipe.seed + 1000 * t_index
        for i in range(recipe.runs):
            ds = simulate_family(name, 1, n_curves=recipe.curves, seed=seed + i,
                                 preset=recipe.preset, marker=recipe.marker,
                                 broadening=recipe.broadening)[0]
            prepared = prepare_curves(ds["intensity"].values, ds["two_theta"].values, prep,
                                      float(ds.attrs["wavelength"]))
            n = prepared.x.shape[0]
            parts["x"].append(prepared.x)
            parts["label"].append(ds["label"].values.astype(np.int8))
            parts["fraction"].append(ds["phase_fraction"].values.astype(np.float32))
            parts["pressure"].append(ds["pressure"].values.astype(np.float32))
            parts["run"].append(np.full(n, done, dtype=np.int32))
            parts["order"].append(np.arange(n, dtype=np.int32))
            parts["transition"].append(np.full(n, t_index, dtype=np.int8))
            done += 1
            if progress is not None:
                progress(done, total)
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    # the curves as the cache stores them, so a network trained now is the one trained later
    arrays["x"] = arrays["x"].astype(np.float16).astype(np.float32)
    corpus = Corpus(recipe=recipe, preprocessing=prep, grid=grid,
                    seconds=time.perf_counter() - t0, **arrays)
    corpus.save(path)
    corpus.path = path
    return corpus
