"""Phase identification: which library phase a curve (or a run's segment) shows.

A :class:`~specflow.models.regnet1d.RegNet1D` is trained with an
:class:`~specflow.models.regnet1d.AdaCos` head on physics-augmented renders of the training
entries of a :class:`~specflow.data.reference.ReferenceLibrary`. Identification is retrieval:
a curve's embedding is compared (cosine) with the embeddings of **every** library entry's
clean render, so phases the network never trained on can still be named, and the split can
hold whole structure groups out. ``split_entries(kind="structure")`` is that leak-free split;
``kind="random"`` reproduces the original's leaky protocol (fresh augmentations of entries
that are also trained on) for comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from sklearn.model_selection import GroupShuffleSplit

from specflow.data.patterns import (
    Q_GRID,
    PatternAugmentation,
    augmented_curves,
    clean_curves,
    q_grid,
)
from specflow.data.preprocess import PreparedCurves, Preprocessing, prepare_curves
from specflow.data.reference import ReferenceLibrary
from specflow.data.schema import INTENSITY, PRESSURE, TWO_THETA
from specflow.learn.data import wavelength_of
from specflow.learn.devices import check_device, resolve_device
from specflow.models.regnet1d import AdaCos, RegNet1D, cosface_loss

IDENTIFIER_FORMAT = "specflow-identifier/1"
SEGMENTS = ("before", "during", "after")


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
    """Shared by the identifiers: preparing a run's curves, ranking, segments."""

    method: str
    library_: ReferenceLibrary
    baseline: str | None = "snip"

    def scores(self, curves: np.ndarray, covered: np.ndarray | None = None
               ) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

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

    def rank(self, scores: np.ndarray, top: int = 5) -> list[Candidate]:
        """The ``top`` entries of one score vector."""
        order = np.argsort(-scores)[:top]
        return [Candidate(self.library_.entries[i].name, self.library_.entries[i].formula,
                          self.library_.entries[i].space_group, float(scores[i]))
                for i in order]

    def identify_run(self, ds: xr.Dataset, labels: np.ndarray | None = None, top: int = 5,
                     per_curve: bool = False) -> dict[str, Any]:
        """Top candidates per segment of a run.

        Segments are ``before``/``during``/``after`` from ``labels`` (0/1/2 per curve, e.g.
        the phase model's), or from the run's own curves when not given
        (:func:`segments_from_scores`); a segment's scores are the mean over its curves.
        Returns ``{"segments": {name: [candidate dicts]}, "pressure": {name: [min, max]},
        "library_version", "method"}`` plus ``"curves"`` (ranked per curve) with
        ``per_curve``.
        """
        prepared = self.prepared(ds)
        scores = self.scores(prepared.x, prepared.covered)
        if labels is None:
            labels = segments_from_scores(scores, ds[PRESSURE].values)
        labels = np.asarray(labels)
        result: dict[str, Any] = {"segments": {}, "pressure": {},
                                  "library_version": self.library_.version,
                                  "method": self.method}
        for code, segment in enumerate(SEGMENTS):
            members = labels == code
            if members.any():
                ranked = self.rank(scores[members].mean(0), top)
                result["segments"][segment] = [c.as_dict() for c in ranked]
                pressure = ds[PRESSURE].values[members]
                result["pressure"][segment] = [float(pressure.min()), float(pressure.max())]
        if per_curve:
            result["curves"] = [[c.as_dict() for c in self.rank(row, top)] for row in scores]
        return result


class LibraryMatcher(_RunIdentification):
    """The no-learning control: cosine of each prepared curve to every entry's clean
    render, best over a strain scan (:func:`raw_cosine_scores`)."""

    method = "raw"

    def __init__(self, library: ReferenceLibrary, baseline: str | None = "snip") -> None:
        self.library_ = library
        self.baseline = baseline
        self._references: list[np.ndarray] | None = None

    def scores(self, curves: np.ndarray, covered: np.ndarray | None = None) -> np.ndarray:
        """Cosine (n, entries) over each curve's ``covered`` bins (default: all). The
        strained references are rendered once per matcher, not once per run."""
        if self._references is None:
            self._references = strained_references(self.library_, self.preprocessing())
        return raw_cosine_scores(self.library_, np.asarray(curves, dtype=np.float32), covered,
                                 references=self._references)


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

    def scores(self, curves: np.ndarray, covered: np.ndarray | None = None) -> np.ndarray:
        """Cosine similarity (n, entries) of prepared curves' embeddings (n, Q grid) to
        every entry's (``covered`` is not needed: the network saw windows in training)."""
        self._check()
        return (self._embed(np.asarray(curves, dtype=np.float32)) @ self.gallery_.T).numpy()

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
        ident.library_ = ReferenceLibrary.from_dataset(ds)
        ident.train_entries_ = saved["train_entries"].numpy()
        ident.gallery_ = saved["gallery"]  # as trained: no drift with library versions
        ident.history_ = list(saved["history"])
        ident.train_seconds_ = float(saved["train_seconds"])
        return ident


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
    if pressure is not None and len(pressure) == n:
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


def topk_accuracy(scores: np.ndarray, truth: np.ndarray, ks: Sequence[int] = (1, 5)
                  ) -> dict[str, float]:
    """Top-k accuracy of score rows against true entry indices."""
    order = np.argsort(-scores, axis=1)
    return {f"top{k}": float(np.mean([t in row[:k] for t, row in zip(truth, order,
                                                                      strict=True)]))
            for k in ks}


def evaluate_identifier(ident: PhaseIdentifier, test: Sequence[int], views: int = 4,
                        seed: int = 1) -> dict[str, float]:
    """Top-1/top-5 of fresh augmented renders of the ``test`` entries, ranked over the whole
    library, for the identifier and for the library-cosine control (:class:`LibraryMatcher`:
    cosine to each entry's clean render over the covered bins, best over a −2…+6 % strain
    scan)."""
    lib = ident.library_
    rng = np.random.default_rng(seed)
    idx = np.repeat(np.asarray(test), views)
    x, covered = augmented_curves(_sticks(lib, idx), q_grid(), ident.config.augmentation, rng,
                                  ident.preprocessing(), with_coverage=True)
    out = {f"model_{k}": v for k, v in topk_accuracy(ident.scores(x), idx).items()}
    raw = LibraryMatcher(lib, ident.config.baseline).scores(x, covered)
    out |= {f"raw_{k}": v for k, v in topk_accuracy(raw, idx).items()}
    out["queries"] = len(idx)
    return out


STRAINS = np.arange(-0.02, 0.0601, 0.0025)


def strained_references(library: ReferenceLibrary, preprocessing: Preprocessing | None = None,
                        strains: np.ndarray = STRAINS) -> list[np.ndarray]:
    """Each entry's clean render (prepared with ``preprocessing``), one array per strain of
    the scan (Q scaled by 1 + strain)."""
    return [clean_curves([(e.q * (1 + s), e.intensity) for e in library.entries], q_grid(),
                         preprocessing) for s in strains]


def raw_cosine_scores(library: ReferenceLibrary, curves: np.ndarray,
                      covered: np.ndarray | None = None,
                      preprocessing: Preprocessing | None = None,
                      references: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Control: cosine of curves to each entry's clean render (prepared with
    ``preprocessing``), maximised over a strain scan (Q scaled by 0.98–1.06 in 0.25 % steps,
    finer than a peak; ``references`` from :func:`strained_references` if already rendered),
    both restricted to the bins each curve ``covered`` (a mask for all curves or one per
    curve; default: every bin). No learning."""
    grid = q_grid()
    references = (strained_references(library, preprocessing) if references is None
                  else references)
    curves = np.asarray(curves, dtype=np.float32)
    mask = np.broadcast_to(np.ones(grid.size, bool) if covered is None else covered,
                           curves.shape).astype(np.float32)
    curves = curves * mask
    norm_c = np.linalg.norm(curves, axis=1)[:, None] + 1e-12
    best = np.full((len(curves), len(library)), -1.0, dtype=np.float32)
    for refs in references:
        norm_r = np.sqrt(mask @ (refs * refs).T) + 1e-12  # each ref on each curve's bins
        np.maximum(best, (curves @ refs.T) / (norm_c * norm_r), out=best)
    return best
