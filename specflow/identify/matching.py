"""Phase identification: which library phase a curve (or a run's segment) shows.

A :class:`~specflow.models.regnet1d.RegNet1D` is trained with an
:class:`~specflow.models.regnet1d.AdaCos` head on physics-augmented renders of the training
entries of a :class:`~specflow.identify.reference.ReferenceLibrary`. Identification is retrieval:
a curve's embedding is compared (cosine) with the embeddings of **every** library entry's
clean render, so phases the network never trained on can still be named, and the split can
hold whole structure groups out. ``split_entries(kind="structure")`` is that leak-free split;
``kind="random"`` reproduces the original's leaky protocol (fresh augmentations of entries
that are also trained on) for comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from sklearn.model_selection import GroupShuffleSplit

from specflow.data.preprocess import PreparedCurves, Preprocessing, prepare_curves
from specflow.data.schema import INTENSITY, PHASE_NAMES, PRESSURE, TWO_THETA
from specflow.identify.compression import compression_window, stretch_curves
from specflow.identify.patterns import (
    Q_GRID,
    PatternAugmentation,
    augmented_curves,
    clean_curves,
    q_grid,
)
from specflow.identify.reference import ReferenceLibrary, candidate_library, parse_elements
from specflow.learn.data import wavelength_of
from specflow.learn.devices import check_device, resolve_device
from specflow.models.regnet1d import AdaCos, RegNet1D, cosface_loss
from specflow.simulator.transitions import get_transition

IDENTIFIER_FORMAT = "specflow-identifier/1"
SEGMENTS = tuple(PHASE_NAMES.values())


@dataclass
class IdentifyConfig:
    """Training settings of the identifier (defaults: minutes on a 2-core CPU)."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    loss: Literal["adacos", "cosface"] = "adacos"
    widths: tuple[int, ...] = (16, 32, 32, 64, 64, 128, 128)
    depths: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 1)
    kernel: int = 8
    baseline: str | None = "snip"
    augmentation: PatternAugmentation = field(default_factory=PatternAugmentation)
    gallery_views: int = 8  # augmented renders averaged into each entry's gallery embedding
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.loss not in ("adacos", "cosface"):
            raise ValueError(f"unknown loss {self.loss!r}; use 'adacos' or 'cosface'")
        if self.steps < 1 or self.batch_size < 2:
            raise ValueError("steps must be ≥ 1 and batch_size ≥ 2")
        self.device = check_device(self.device)


def split_entries(library: ReferenceLibrary, kind: Literal["structure", "random"] = "structure",
                  test_size: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) entry indices. ``structure``: whole prototype groups on one side;
    ``random``: every entry trains and a random ``test_size`` of them are queried (leaky)."""
    n = len(library)
    if kind == "random":
        rng = np.random.default_rng(seed)
        return np.arange(n), np.sort(rng.choice(n, max(1, round(test_size * n)), replace=False))
    if kind != "structure":
        raise ValueError(f"unknown split {kind!r}; use 'structure' or 'random'")
    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(splitter.split(np.zeros(n), groups=library.groups))
    return np.sort(train), np.sort(test)


def _sticks(library: ReferenceLibrary, idx: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(library.entries[i].q, library.entries[i].intensity) for i in idx]


@dataclass
class Candidate:
    """A ranked library phase for a curve or a segment."""

    name: str
    formula: str
    space_group: str
    score: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RunIdentification:
    """Shared by the identifiers: preparing a run's curves, the compression scan, ranking,
    segments.

    :meth:`scores` stretches each curve back over its compression window
    (:func:`~specflow.identify.compression.compression_window`: the curve's pressure against each
    entry's lattice pressure) on a grid of ``scan_step`` and keeps each entry's best raw
    score (:meth:`_raw_scores`) where the stretch is plausible. A raw score that already
    tolerates a strain range itself (``tolerance``: the model's training strains) needs a
    coarser grid: a stretch counts where its tolerated range overlaps the window by more
    than ``min_overlap``.
    """

    method: str
    library_: ReferenceLibrary
    baseline: str | None = "snip"
    scan_step: float = 0.0025  # finer than a peak
    tolerance: tuple[float, float] = (0.0, 0.0)
    min_overlap: float = -1e-9  # a point scan: the stretch lies inside the window
    #: The sample-chemistry filter :meth:`identify_run` applies when given none (see
    #: :meth:`allowed`); None: every entry.
    elements: str | Iterable[str] | None = None

    def generated(self, elements: Sequence[str]) -> _RunIdentification | None:
        """An identifier over candidates made of ``elements`` (for a sample the library has
        no phase of), or None when this identifier cannot rank generated ones."""
        return None


    def _raw_scores(self, curves: np.ndarray, covered: np.ndarray
                    ) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def scores(self, curves: np.ndarray, covered: np.ndarray | None = None,
               pressure: np.ndarray | None = None) -> np.ndarray:
        """Scores (n, entries) of prepared curves (n, Q grid), best over each curve's
        compression window; ``covered``: the bins each curve measured (default all);
        ``pressure``: GPa per curve (None or NaN: unknown, a −2…+6 % window)."""
        return self.scan(curves, covered, pressure)[0]

    def scan(self, curves: np.ndarray, covered: np.ndarray | None = None,
             pressure: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`scores`, the stretch (Q scale − 1) at which each score was reached)."""
        curves = np.asarray(curves, dtype=np.float32)
        covered = np.broadcast_to(np.ones(curves.shape[1], bool) if covered is None
                                  else covered, curves.shape)
        lo, hi = compression_window(pressure, len(curves), self.library_.pressures)
        t0, t1 = self.tolerance
        best = np.full(lo.shape, -np.inf, dtype=np.float32)
        at = np.zeros(lo.shape, dtype=np.float32)
        grid = q_grid()
        first = int(np.ceil((lo.min() - t1) / self.scan_step - 1e-9))
        last = int(np.floor((hi.max() - t0) / self.scan_step + 1e-9))
        for k in range(first, last + 1):
            strain = k * self.scan_step
            ok = np.minimum(hi, strain + t1) - np.maximum(lo, strain + t0) > self.min_overlap
            rows = np.flatnonzero(ok.any(1))
            if rows.size == 0:
                continue
            x, mask = stretch_curves(curves[rows], grid, strain, covered[rows])
            raw = self._raw_scores(x, mask)
            better = ok[rows] & (raw > best[rows])
            best[rows] = np.where(better, raw, best[rows])
            at[rows] = np.where(better, strain, at[rows])
        return best, at

    def preprocessing(self) -> Preprocessing:
        """How measured curves are prepared (the renders' own path)."""
        return Preprocessing(axis="q", grid=Q_GRID, baseline=self.baseline,
                             baseline_width=0.12, min_coverage=0.3)

    def prepared(self, ds: xr.Dataset) -> PreparedCurves:
        """A run's curves on the identification Q grid (the shared preprocessing)."""
        return prepare_curves(ds[INTENSITY].values, ds[TWO_THETA].values,
                              self.preprocessing(), wavelength_of(ds))

    def prepare(self, ds: xr.Dataset) -> np.ndarray:
        """:meth:`prepared` curves only."""
        return self.prepared(ds).x

    def allowed(self, elements: str | Iterable[str] | None, ds: xr.Dataset | None = None
                ) -> tuple[np.ndarray | None, list[str] | None]:
        """(mask of the entries made only of the sample's ``elements``, those elements).
        ``elements``: a formula or list (``"FeO"``, ``"Fe,O"``, ``["Fe", "O"]``), ``"auto"``
        for the run's own (:func:`sample_elements`; the whole library when it has none or
        the library holds no phase of them), or None (every entry)."""
        if elements is None:
            return None, None
        auto = isinstance(elements, str) and elements == "auto"
        if auto:
            chosen = sample_elements(ds.attrs if ds is not None else {})
            if chosen is None:
                return None, None  # the run names no formula: every entry
        elif isinstance(elements, str):
            chosen = parse_elements(elements)
        else:
            chosen = frozenset(elements)
        mask = self.library_.within(chosen)
        if auto and not mask.any():
            return None, None  # a formula the library has no phase of: every entry
        if not mask.any():
            raise ValueError(f"no library phase is made only of {sorted(chosen)}; add one "
                             f"('specflow library add') or drop the element filter")
        return mask, sorted(chosen)

    def rank(self, scores: np.ndarray, top: int = 5) -> list[Candidate]:
        """The ``top`` entries of one score vector (entries scored −inf are left out)."""
        order = [i for i in np.argsort(-scores)[:top] if np.isfinite(scores[i])]
        return [Candidate(self.library_.entries[i].name, self.library_.entries[i].formula,
                          self.library_.entries[i].space_group, float(scores[i]))
                for i in order]

    def identify_run(self, ds: xr.Dataset, labels: np.ndarray | None = None, top: int = 5,
                     per_curve: bool = False,
                     elements: str | Iterable[str] | None = "setting") -> dict[str, Any]:
        """Top candidates per segment of a run.

        Each curve is matched within its compression window (from the run's pressure).
        Segments are ``before``/``during``/``after`` from ``labels`` (0/1/2 per curve, e.g.
        the phase model's), or from the run's own curves when not given
        (:func:`segments_from_scores`); a segment's scores are the mean over its curves.
        ``elements`` restricts the candidates to the sample's chemistry (:meth:`allowed`;
        ``"setting"``, the default: the identifier's ``elements``; None: every entry).
        Returns ``{"segments": {name: [candidate dicts]}, "pressure": {name: [min, max]},
        "library_version", "method", "elements", "no_phase_of"}`` plus ``"curves"`` (ranked
        per curve) with ``per_curve``. ``no_phase_of``: with ``"auto"``, the run's elements
        when the library holds no phase made of them, else None; ``generated``: True when
        candidates made of those elements (:meth:`generated`) were ranked with the library
        (``library_version`` is then that of the two together), False when the candidates
        are the library's other compositions only.
        """
        wanted = self.elements if elements == "setting" else elements
        mask, chosen = self.allowed(wanted, ds)
        no_phase_of = None
        if isinstance(wanted, str) and wanted == "auto" and mask is None:
            named = sample_elements(ds.attrs)
            no_phase_of = sorted(named) if named is not None else None
            generated = self.generated(no_phase_of) if no_phase_of else None
            if generated is not None:  # rank candidates made of the sample's elements
                result = generated.identify_run(ds, labels, top, per_curve, elements=None)
                return {**result, "no_phase_of": no_phase_of, "generated": True}
        prepared = self.prepared(ds)
        pressure = ds[PRESSURE].values
        scores = self.scores(prepared.x, prepared.covered, pressure)
        if mask is not None:
            scores[:, ~mask] = -np.inf
        if labels is None:
            labels = segments_from_scores(scores, pressure)
        labels = np.asarray(labels)
        result: dict[str, Any] = {"segments": {}, "pressure": {},
                                  "library_version": self.library_.version,
                                  "method": self.method, "elements": chosen,
                                  "no_phase_of": no_phase_of, "generated": False}
        for code, segment in enumerate(SEGMENTS):
            members = labels == code
            if members.any():
                ranked = self.rank(scores[members].mean(0), top)
                result["segments"][segment] = [c.as_dict() for c in ranked]
                known = pressure[members][np.isfinite(pressure[members])]
                result["pressure"][segment] = ([float(known.min()), float(known.max())]
                                               if known.size else [None, None])
        if per_curve:
            result["curves"] = [[c.as_dict() for c in self.rank(row, top)] for row in scores]
        return result


class LibraryMatcher(_RunIdentification):
    """The no-learning control: cosine of each prepared curve to every entry's clean
    render on the bins the curve covers, best over the compression scan.

    Intensities are compared compressed, ``max(x − floor, 0) ** power`` (default: the square
    root above 2 % of the strongest peak), so that one peak grown by texture cannot decide
    the match alone and the weaker reflections, which tell structures apart, count; the
    floor keeps the noise out. ``power=1, floor=0`` is the plain cosine.
    """

    method = "raw"

    def __init__(self, library: ReferenceLibrary, baseline: str | None = "snip",
                 elements: str | Iterable[str] | None = None, power: float = 0.5,
                 floor: float = 0.02, generate: bool = True) -> None:
        if not (0 < power <= 1 and 0 <= floor < 1):
            raise ValueError(f"need 0 < power <= 1 and 0 <= floor < 1, got {power}, {floor}")
        self.library_ = library
        self.baseline = baseline
        self.elements = elements
        self.power, self.floor = power, floor
        self.generate = generate
        self._references: np.ndarray | None = None
        self._generated: dict[tuple[str, ...], LibraryMatcher] = {}

    def generated(self, elements: Sequence[str]) -> LibraryMatcher | None:
        """With ``generate``: a matcher over this library plus the bundled prototypes with
        ``elements`` put in (:func:`~specflow.identify.reference.candidate_library`,
        cached), ranked together (a phase of the same structure and another composition
        may still fit best), else None."""
        if not self.generate:
            return None
        try:
            candidates = candidate_library(elements)
        except ValueError:
            return None  # no prototype with as many elements (candidate_library caches it)
        key = tuple(sorted(elements))
        if key not in self._generated:  # one matcher (and one rendering) per elements
            library = ReferenceLibrary([*self.library_.entries, *candidates.entries],
                                       {**self.library_.provenance, "substituted": list(key),
                                        "unique_by": ["name"]})  # keeps the library's own
            self._generated[key] = LibraryMatcher(library, self.baseline, None, self.power,
                                                  self.floor, generate=False)
        return self._generated[key]

    def compress(self, x: np.ndarray) -> np.ndarray:
        """Intensities as the cosine compares them (see the class docstring)."""
        return (np.clip(x - self.floor, 0, None) ** self.power).astype(np.float32)

    def _raw_scores(self, curves: np.ndarray, covered: np.ndarray) -> np.ndarray:
        if self._references is None:  # rendered once per matcher, not once per run
            self._references = self.compress(clean_curves(
                _sticks(self.library_, range(len(self.library_))), q_grid(),
                self.preprocessing()))
        return masked_cosine(self.compress(curves), covered, self._references)


class PhaseIdentifier(_RunIdentification):
    """Names the phase of curves by retrieval over a reference library (RegNet1D + AdaCos).

    Examples
    --------
    >>> lib = build_library(prototypes=10)                  # doctest: +SKIP
    >>> ident = PhaseIdentifier(IdentifyConfig(steps=200)).fit(lib)  # doctest: +SKIP
    >>> ident.identify_run(specflow.simulate("Fe", curves=80))  # doctest: +SKIP
    """

    method = "regnet"

    def __init__(self, config: IdentifyConfig | None = None) -> None:
        self.config = config or IdentifyConfig()

    @property
    def baseline(self) -> str | None:  # type: ignore[override]
        return self.config.baseline

    # ----------------------------------------------------------------------------- fit
    def fit(self, library: ReferenceLibrary, train: Sequence[int] | None = None,
            on_step: Callable[[int, float], Any] | None = None) -> PhaseIdentifier:
        """Train on the ``train`` entries (default: all) of ``library``; the gallery is
        every entry."""
        cfg = self.config
        train = np.arange(len(library)) if train is None else np.asarray(train)
        device = resolve_device(cfg.device)
        grid = q_grid()
        rng = np.random.default_rng(cfg.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            encoder = RegNet1D(cfg.widths, cfg.depths, stem=cfg.widths[0],
                               kernel=cfg.kernel).to(device)
            head = AdaCos(encoder.dim, len(train)).to(device)
        params = [*encoder.parameters(), *head.parameters()]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.steps)
        sticks = _sticks(library, train)
        t0, self.history_ = time.perf_counter(), []
        encoder.train()
        for step in range(cfg.steps):
            pick = rng.integers(0, len(train), cfg.batch_size)
            x = augmented_curves([sticks[i] for i in pick], grid, cfg.augmentation, rng,
                                 self.preprocessing())
            y = torch.as_tensor(pick, device=device)
            h = encoder(torch.as_tensor(x, device=device))
            if cfg.loss == "adacos":
                loss = F.cross_entropy(head(h, y), y)
            else:
                loss = cosface_loss(head(h), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            value = float(loss.detach())
            self.history_.append(value)
            if on_step is not None:
                on_step(step, value)
        self.train_seconds_ = time.perf_counter() - t0
        self.encoder_ = encoder.eval()
        self.library_ = library
        self.train_entries_ = train
        self.gallery_ = self._gallery()
        return self

    def _gallery(self) -> torch.Tensor:
        """Each entry's reference embedding: its clean render's plus the mean of
        ``gallery_views`` augmented renders (seeded), normalised — queries are measured
        curves, so the reference should look like them too."""
        sticks = _sticks(self.library_, range(len(self.library_)))
        grid = q_grid()
        clean = self._embed(clean_curves(sticks, grid, self.preprocessing()))
        views = self.config.gallery_views
        if views < 1:
            return clean
        rng = np.random.default_rng(self.config.seed + 7)
        mean = torch.stack([self._embed(augmented_curves(
            sticks, grid, self.config.augmentation, rng, self.preprocessing()))
            for _ in range(views)]).mean(0)
        return F.normalize(clean + mean, dim=1)

    @torch.inference_mode()
    def _embed(self, x: np.ndarray, batch: int = 256) -> torch.Tensor:
        device = next(self.encoder_.parameters()).device
        out = [F.normalize(self.encoder_(torch.as_tensor(x[i:i + batch], device=device)), dim=1)
               for i in range(0, len(x), batch)]
        return torch.cat(out).cpu() if out else torch.zeros(0, self.encoder_.dim)

    # ------------------------------------------------------------------------- predict
    def _check(self) -> None:
        if getattr(self, "encoder_", None) is None:
            raise RuntimeError("this PhaseIdentifier is not fitted yet: call fit() first")

    @property
    def tolerance(self) -> tuple[float, float]:  # type: ignore[override]
        """The strains the network was trained on: one stretch covers this range."""
        return self.config.augmentation.strain

    @property
    def scan_step(self) -> float:  # type: ignore[override]
        return max(self.tolerance[1] - self.tolerance[0], 0.0025)  # tiles of the strain axis

    #: A stretch whose range overlaps the window by 1 % or less is not used (+ float slack:
    #: the window of an unknown pressure then needs this one stretch only).
    min_overlap = 0.0101

    def _raw_scores(self, curves: np.ndarray, covered: np.ndarray) -> np.ndarray:
        """Cosine of embeddings to every entry's gallery embedding (``covered`` is not
        needed: the network saw windows in training)."""
        return (self._embed(curves) @ self.gallery_.T).numpy()

    def scan(self, curves: np.ndarray, covered: np.ndarray | None = None,
             pressure: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        self._check()
        return super().scan(curves, covered, pressure)

    # ----------------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Weights, settings, the library and the gallery embeddings (tensors and plain
        values: loads with weights_only)."""
        self._check()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lib = self.library_.to_dataset()
        cfg = {**asdict(self.config), "augmentation": asdict(self.config.augmentation)}
        torch.save({"format": IDENTIFIER_FORMAT, "config": cfg,
                    "encoder": self.encoder_.config, "state_dict": self.encoder_.state_dict(),
                    "library": {"q": torch.as_tensor(lib["q"].values),
                                "intensity": torch.as_tensor(lib["intensity"].values),
                                **{k: [str(v) for v in lib[k].values] for k in (
                                    "name", "formula", "space_group", "prototype", "source")},
                                "pressure": torch.as_tensor(lib["pressure"].values),
                                "attrs": dict(lib.attrs)},
                    "train_entries": torch.as_tensor(self.train_entries_),
                    "gallery": self.gallery_, "history": list(self.history_),
                    "train_seconds": float(self.train_seconds_)}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> PhaseIdentifier:
        saved = torch.load(Path(path), map_location="cpu", weights_only=True)
        if saved.get("format") != IDENTIFIER_FORMAT:
            raise ValueError(f"{path} is not a specflow identifier ({saved.get('format')!r})")
        cfg = dict(saved["config"])
        cfg["augmentation"] = PatternAugmentation(**{k: tuple(v) if isinstance(v, list) else v
                                                     for k, v in cfg["augmentation"].items()})
        cfg["widths"], cfg["depths"] = tuple(cfg["widths"]), tuple(cfg["depths"])
        cfg["device"] = device
        ident = cls(IdentifyConfig(**cfg))
        enc = saved["encoder"]
        ident.encoder_ = RegNet1D(tuple(enc["widths"]), tuple(enc["depths"]), enc["stem"],
                                  enc["kernel"], enc["dropout"], enc["group_width"])
        ident.encoder_.load_state_dict(saved["state_dict"])
        ident.encoder_.to(resolve_device(device)).eval()
        lib = saved["library"]
        ds = xr.Dataset({"q": (("entry", "peak"), lib["q"].numpy()),
                         "intensity": (("entry", "peak"), lib["intensity"].numpy())},
                        coords={k: ("entry", lib[k]) for k in (
                            "name", "formula", "space_group", "prototype", "source")},
                        attrs=lib["attrs"])
        if "pressure" in lib:  # else from_dataset supplies the legacy pressures
            ds = ds.assign_coords(pressure=("entry", lib["pressure"].numpy()))
        ident.library_ = ReferenceLibrary.from_dataset(ds)
        ident.train_entries_ = saved["train_entries"].numpy()
        ident.gallery_ = saved["gallery"]  # as trained: no drift with library versions
        ident.history_ = list(saved["history"])
        ident.train_seconds_ = float(saved["train_seconds"])
        return ident


def sample_elements(attrs: dict[str, Any]) -> frozenset[str] | None:
    """The elements of a run's sample from its ``formula`` or ``material`` attribute (the
    first that is a chemical formula), or None. The free-text ``sample`` name is not read:
    labels such as ``S1`` or ``B2`` parse as formulas."""
    for key in ("formula", "material"):
        try:
            return parse_elements(str(attrs.get(key) or ""))
        except ValueError:
            continue
    return None


def segments_from_scores(scores: np.ndarray, pressure: np.ndarray | None = None,
                         edge: float = 0.1, margin: float = 0.02) -> np.ndarray:
    """Segment labels (0 before, 1 during, 2 after) from per-curve scores alone.

    On the compression leg (up to the last curve at the highest ``pressure``), the best entry
    of the first and of the last ``edge`` of the curves are compared. One segment, ``before``,
    unless they differ **and** each wins its own window by more than ``margin`` (two
    near-identical entries trading places is noise, not a transition). Then ``d`` =
    score(first) − score(last), smoothed, marks ``before`` where ``d > margin`` (leading),
    ``after`` where ``d < −margin`` (trailing) and ``during`` in between. Curves after the
    pressure maximum (decompression) take 0 or 2 by the sign of ``d``. (The analyzer uses the
    phase model's labels instead.)
    """
    n = len(scores)
    labels = np.zeros(n, dtype=np.int8)
    if n < 3:
        return labels
    if pressure is not None and len(pressure) == n and np.isfinite(pressure).any():
        p = np.asarray(pressure, dtype=float)
        up = int(np.flatnonzero(p >= np.nanmax(p) - 0.1)[-1]) + 1  # a hold stays on the leg
    else:
        up = n
    up = max(up, 3)
    k = max(1, min(int(edge * up), up // 2) or 1)
    head, tail = scores[:k].mean(0), scores[up - k:up].mean(0)
    first, last = int(head.argmax()), int(tail.argmax())
    if first == last or head[first] - head[last] <= margin or tail[last] - tail[first] <= margin:
        return labels
    d = scores[:, first] - scores[:, last]
    width = min(max(3, up // 20), n)
    smooth = np.convolve(d, np.ones(width) / width, mode="same")[:n]
    leg = smooth[:up]
    lead = int(np.argmax(leg <= margin)) if (leg <= margin).any() else up
    trail = int(np.argmax(leg[::-1] >= -margin)) if (leg >= -margin).any() else up
    labels[lead:up] = 1
    labels[up - trail:up] = 2
    labels[up:] = np.where(smooth[up:] > 0, 0, 2)
    return labels


def segment_hits(identifier: _RunIdentification, ds: xr.Dataset,
                 elements: str | Iterable[str] | None = "setting"
                 ) -> dict[str, dict[str, float]]:
    """How ``identifier`` names the true segments of a simulated run (its ``material``
    names the transition, its true labels the segments): for ``before`` and ``after``,
    ``top1``/``top5`` (1.0 when the true phase is first / in the first five); for
    ``during``, ``both`` (both phases in the first five)."""
    transition = get_transition(str(ds.attrs["material"]))
    names = {"before": transition.low.name, "after": transition.high.name}
    truth = ds["true_label"].values if "true_label" in ds else ds["label"].values
    result = identifier.identify_run(ds, labels=truth, top=5, elements=elements)
    hits: dict[str, dict[str, float]] = {}
    for segment, ranked in result["segments"].items():
        got = [c["name"] for c in ranked]
        if segment in names:
            hits[segment] = {"top1": float(bool(got) and got[0] == names[segment]),
                             "top5": float(names[segment] in got)}
        else:
            hits[segment] = {"both": float(names["before"] in got and names["after"] in got)}
    return hits


def topk_accuracy(scores: np.ndarray, truth: np.ndarray, ks: Sequence[int] = (1, 5)
                  ) -> dict[str, float]:
    """Top-k accuracy of score rows against true entry indices."""
    order = np.argsort(-scores, axis=1)
    return {f"top{k}": float(np.mean([t in row[:k] for t, row in zip(truth, order,
                                                                      strict=True)]))
            for k in ks}


def evaluate_identifier(ident: PhaseIdentifier | None, test: Sequence[int], views: int = 4,
                        seed: int = 1, library: ReferenceLibrary | None = None
                        ) -> dict[str, float]:
    """Top-1/top-5 of fresh augmented renders of the ``test`` entries, ranked over the whole
    library, for the identifier and for the library-cosine control (:class:`LibraryMatcher`:
    cosine to each entry's clean render over the covered bins, best over the −2…+6 % strain
    scan of an unknown pressure). ``ident`` None: the control alone, on ``library`` with the
    default augmentation."""
    if ident is None and library is None:
        raise ValueError("give a fitted identifier or, for the control alone, a library")
    lib = ident.library_ if ident is not None else library
    config = ident.config if ident is not None else IdentifyConfig(device="cpu")
    matcher = LibraryMatcher(lib, config.baseline)
    rng = np.random.default_rng(seed)
    idx = np.repeat(np.asarray(test), views)
    x, covered = augmented_curves(_sticks(lib, idx), q_grid(), config.augmentation, rng,
                                  matcher.preprocessing(), with_coverage=True)
    out: dict[str, float] = {}
    if ident is not None:
        out |= {f"model_{k}": v for k, v in topk_accuracy(ident.scores(x), idx).items()}
    out |= {f"raw_{k}": v for k, v in topk_accuracy(matcher.scores(x, covered), idx).items()}
    out["queries"] = len(idx)
    return out


def masked_cosine(curves: np.ndarray, covered: np.ndarray, references: np.ndarray
                  ) -> np.ndarray:
    """Cosine (n, entries) of each curve to each reference, both restricted to the bins the
    curve ``covered`` (a reference is not penalised for peaks outside the measured window,
    but is for peaks inside it that the curve lacks)."""
    mask = np.broadcast_to(covered, curves.shape).astype(np.float32)
    curves = np.asarray(curves, dtype=np.float32) * mask
    norm_c = np.linalg.norm(curves, axis=1)[:, None] + 1e-12
    norm_r = np.sqrt(mask @ (references * references).T) + 1e-12
    return (curves @ references.T) / (norm_c * norm_r)
