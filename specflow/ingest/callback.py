"""Live collection of Bluesky documents into canonical spectra Datasets."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from event_model import DocumentRouter

from specflow.data.schema import energy_to_wavelength, make_spectra

from . import keys
from .buffer import SpectraBuffer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """A document (or event within a page) the collector could not use."""

    reason: str
    seq_num: int | None = None
    run_uid: str | None = None
    stream: str | None = None


@dataclass
class _Stream:
    run_uid: str
    name: str
    spectrum_key: str
    pressure_key: str | None
    two_theta: np.ndarray
    energy: float | None
    buffer: SpectraBuffer


@dataclass
class _Run:
    start: dict[str, Any]
    stop: dict[str, Any] | None = None
    streams: dict[str, _Stream] = field(default_factory=dict)  # by stream name


@dataclass(frozen=True)
class SpectraUpdate:
    """New curves ``[start, stop)`` of one run's stream; read them without copying."""

    collector: SpectraCollector
    run_uid: str
    stream: str
    start: int
    stop: int

    @property
    def intensity(self) -> np.ndarray:
        return self.collector._stream(self.run_uid, self.stream).buffer.intensity[
            self.start : self.stop]

    @property
    def pressure(self) -> np.ndarray:
        return self.collector._stream(self.run_uid, self.stream).buffer.pressure[
            self.start : self.stop]

    def with_preceding(self, n: int) -> np.ndarray:
        """The new curves with up to ``n`` curves received before them (no copy)."""
        return self.collector._stream(self.run_uid, self.stream).buffer.intensity[
            max(self.start - n, 0) : self.stop]

    @property
    def dataset(self) -> xr.Dataset:
        """The whole stream so far as a canonical Dataset (a copy)."""
        return self.collector.dataset(self.run_uid, self.stream)


class SpectraCollector(DocumentRouter):
    """Accumulate ``event``/``event_page`` documents into one spectra Dataset per run.

    Subscribe it to a RunEngine (``RE.subscribe(collector)``) or feed it documents.
    Spectrum and pressure keys are detected per descriptor (the only 1-D array key; the
    non-setpoint key named like ``pressure``/``readback``) unless given. Only streams in
    ``streams`` are kept (``None`` keeps every stream). Bad documents are logged and
    appended to :attr:`problems`; nothing raises into the caller and good events of a
    page are kept.
    """

    def __init__(
        self,
        streams: str | Iterable[str] | None = "primary",
        *,
        spectrum_key: str | None = None,
        pressure_key: str | None = None,
        two_theta_key: str | None = None,
        initial_capacity: int = 256,
    ) -> None:
        super().__init__()
        self.streams = {streams} if isinstance(streams, str) else (
            None if streams is None else set(streams))
        self.spectrum_key = spectrum_key
        self.pressure_key = pressure_key
        self.two_theta_key = two_theta_key
        self.initial_capacity = initial_capacity
        self.problems: list[Problem] = []
        self._runs: dict[str, _Run] = {}
        self._descriptors: dict[str, _Stream] = {}
        self._skipped: dict[str, str] = {}  # descriptor uid -> stream name (filtered/unusable)
        self._callbacks: list[Callable[[SpectraUpdate], Any]] = []

    # ----------------------------------------------------------------- public API
    def on_update(self, callback: Callable[[SpectraUpdate], Any]) -> Callable:
        """Call ``callback(update)`` after every accepted event or page; returns it."""
        self._callbacks.append(callback)
        return callback

    @property
    def run_uids(self) -> list[str]:
        """Runs seen so far, in order of their start documents."""
        return list(self._runs)

    @property
    def datasets(self) -> dict[str, xr.Dataset]:
        """One Dataset per run uid (its first collected stream)."""
        return {uid: self.dataset(uid) for uid, run in self._runs.items() if run.streams}

    def dataset(self, uid: str | None = None, stream: str | None = None) -> xr.Dataset:
        """Canonical Dataset of run ``uid`` (default: latest run with data) and ``stream``
        (default: its first collected stream). The arrays are copies."""
        if uid is None:
            with_data = [u for u, r in self._runs.items() if r.streams]
            if not with_data:
                raise LookupError("no spectra collected yet")
            uid = with_data[-1]
        st = self._stream(uid, stream)
        run, buf, n = self._runs[uid], st.buffer, st.buffer.size
        attrs = {
            "run_uid": uid, "sample": run.start.get("sample", ""),
            "material": run.start.get("material", ""), "stream": st.name,
            "spectrum_key": st.spectrum_key, "pressure_key": st.pressure_key or "",
            "complete": run.stop is not None,
        }
        if st.energy is not None:
            attrs.update(energy=st.energy, wavelength=energy_to_wavelength(st.energy))
        return make_spectra(
            buf.intensity[:n].copy(), st.two_theta, buf.pressure[:n].copy(),
            time=buf.time[:n].copy(), attrs=attrs, extra={"seq_num": buf.seq_num[:n].copy()},
        )

    # ----------------------------------------------------------- document handlers
    def start(self, doc: dict) -> None:
        self._guard(self._start, doc)

    def descriptor(self, doc: dict) -> None:
        self._guard(self._descriptor, doc)

    def event(self, doc: dict) -> None:
        self._guard(self._event, doc)

    def event_page(self, doc: dict) -> None:
        self._guard(self._event_page, doc)

    def stop(self, doc: dict) -> None:
        self._guard(self._stop, doc)

    # --------------------------------------------------------------- internals
    def _guard(self, handler: Callable[[dict], None], doc: dict) -> None:
        try:
            handler(doc)
        except Exception as exc:  # never raise into the RunEngine
            logger.exception("SpectraCollector failed on a document")
            self.problems.append(Problem(f"internal error: {exc!r}"))

    def _problems(self, st: _Stream | None, seqs: Iterable[Any], reason: str,
                  run_uid: str | None = None) -> None:
        """Record one :class:`Problem` per event (``seqs``; ``[None]`` for a descriptor)."""
        seqs = [int(s) if s is not None else None for s in seqs]
        run_uid = st.run_uid if st else run_uid
        stream = st.name if st else None
        self.problems.extend(Problem(reason, s, run_uid, stream) for s in seqs)
        where = f"run {run_uid}" + (f" stream {stream!r}" if stream else "")
        if seqs and seqs[0] is not None:
            shown = seqs if len(seqs) <= 10 else [*seqs[:10], "..."]
            logger.warning("SpectraCollector dropped %d event(s) seq_num %s of %s: %s",
                           len(seqs), shown, where, reason)
        elif seqs:
            logger.warning("SpectraCollector: %s (%s)", reason, where)

    def _start(self, doc: dict) -> None:
        self._runs[doc["uid"]] = _Run(start=dict(doc))

    def _stop(self, doc: dict) -> None:
        run = self._runs.get(doc.get("run_start"))
        if run is not None:
            run.stop = dict(doc)

    def _descriptor(self, doc: dict) -> None:
        uid, name, run_uid = doc["uid"], doc.get("name", "primary"), doc.get("run_start")
        if self.streams is not None and name not in self.streams:
            self._skipped[uid] = name
            return
        if run_uid not in self._runs:
            self._problems(None, [None], "descriptor before its start document", run_uid)
            self._runs[run_uid] = _Run(start={"uid": run_uid})
        run = self._runs[run_uid]
        data_keys = doc.get("data_keys") or {}
        try:
            spec = keys.spectrum_key(data_keys, self.spectrum_key)
        except keys.KeyDetectionError as exc:
            self._skipped[uid] = name
            self._problems(None, [None], f"stream {name!r} skipped: {exc}", run_uid)
            return
        pkey = keys.pressure_key(data_keys, self.pressure_key)
        if pkey is None:
            self._problems(None, [None], f"missing pressure: stream {name!r} has no pressure "
                           f"data key (data keys {sorted(data_keys)})", run_uid)
        n_points = int(data_keys[spec]["shape"][0])
        config = doc.get("configuration") or {}
        grid = keys.two_theta_grid(config, n_points, self.two_theta_key)
        if grid is None:
            self._problems(None, [None], f"stream {name!r}: no 2θ grid of length {n_points} in "
                           "configuration; using the point index", run_uid)
            grid = np.arange(n_points, dtype=float)
        energy = keys.energy_kev(config, run.start)
        st = run.streams.get(name)
        if st is None or st.buffer.n_points != n_points:
            st = _Stream(run_uid, name, spec, pkey, grid, energy,
                         SpectraBuffer(n_points, self.initial_capacity))
            run.streams[name] = st
        self._descriptors[uid] = st

    def _lookup(self, desc_uid: str, seqs: Iterable[Any]) -> _Stream | None:
        st = self._descriptors.get(desc_uid)
        if st is None and desc_uid not in self._skipped:
            reason = (f"unknown descriptor {desc_uid}" if self._descriptors or self._skipped
                      else f"event before any descriptor (descriptor {desc_uid})")
            self._problems(None, seqs, reason)
        return st

    def _event(self, doc: dict) -> None:
        seq = doc.get("seq_num")
        st = self._lookup(doc.get("descriptor"), [seq])
        if st is not None:
            data = doc.get("data") or {}
            self._ingest(st, [data.get(st.spectrum_key)], [data.get(st.pressure_key)],
                         [doc.get("time", np.nan)], [seq])

    def _event_page(self, doc: dict) -> None:
        seqs = list(doc.get("seq_num", ()))
        st = self._lookup(doc.get("descriptor"), seqs)
        if st is not None:
            data, k = doc.get("data") or {}, len(seqs)
            spectra = data.get(st.spectrum_key)
            pressure = data.get(st.pressure_key)
            times = doc.get("time")
            self._ingest(st, [None] * k if spectra is None else spectra,
                         [None] * k if pressure is None else pressure,
                         [np.nan] * k if times is None else times, seqs)

    def _ingest(self, st: _Stream, spectra: Any, pressure: Any, times: Any, seqs: Any) -> None:
        k = len(seqs)
        if k == 0:
            return
        buf = st.buffer
        buf.reserve(k)
        block = buf.tail(k)
        reasons: dict[str, list[int]] = {}
        keep = np.ones(k, dtype=bool)
        if _uniform(spectra, k, buf.n_points):
            try:
                block[...] = spectra  # fast path: k rows of the right length
            except (ValueError, TypeError):
                self._copy_rows(block, spectra, buf.n_points, keep, reasons)
        else:
            self._copy_rows(block, spectra, buf.n_points, keep, reasons)
        sums = np.add.reduce(block, axis=1, dtype=np.float64)
        if not np.isfinite(sums).all():
            finite = np.isfinite(block).all(axis=1)
            for i in np.flatnonzero(~finite & keep):
                reasons.setdefault("spectrum contains NaN/inf", []).append(i)
            keep &= finite
        p = _floats(pressure, k)
        bad_p = ~np.isfinite(p) & keep
        for i in np.flatnonzero(bad_p):
            reasons.setdefault(f"missing pressure ({st.pressure_key or 'no key'})", []).append(i)
        keep &= ~bad_p
        seq_arr = np.asarray([-1 if s is None else s for s in seqs], dtype=np.int64)
        begin = buf.size
        kept = buf.commit(k, p, _floats(times, k), seq_arr, keep)
        for reason, idx in reasons.items():
            self._problems(st, [seqs[i] for i in idx], reason)
        if kept:
            update = SpectraUpdate(self, st.run_uid, st.name, begin, begin + kept)
            for callback in self._callbacks:
                try:
                    callback(update)
                except Exception:
                    logger.exception("SpectraCollector on_update callback failed")

    @staticmethod
    def _copy_rows(block: np.ndarray, spectra: Any, n_points: int, keep: np.ndarray,
                   reasons: dict[str, list[int]]) -> None:
        rows = list(spectra) if isinstance(spectra, list | tuple | np.ndarray) else []
        rows += [None] * (len(keep) - len(rows))
        for i, row in enumerate(rows[: len(keep)]):
            try:
                arr = np.asarray(row, dtype=np.float32)
            except (ValueError, TypeError):
                arr = None
            if arr is None or row is None or arr.shape != (n_points,):
                shape = "missing" if row is None else f"shape {np.shape(row)}"
                reasons.setdefault(f"spectrum {shape}, expected ({n_points},)", []).append(i)
                keep[i] = False
                block[i] = 0.0
            else:
                block[i] = arr

    def _stream(self, uid: str, stream: str | None) -> _Stream:
        run = self._runs.get(uid)
        if run is None or not run.streams:
            raise LookupError(f"no spectra collected for run {uid!r}")
        if stream is None:
            return next(iter(run.streams.values()))
        if stream not in run.streams:
            raise LookupError(f"run {uid!r} has no collected stream {stream!r}")
        return run.streams[stream]


def _uniform(spectra: Any, k: int, n_points: int) -> bool:
    """True if ``spectra`` looks like ``k`` rows of ``n_points`` values (cheap check)."""
    if isinstance(spectra, np.ndarray):
        return spectra.shape == (k, n_points)
    try:
        return len(spectra) == k and all(len(row) == n_points for row in spectra)
    except TypeError:
        return False


def _floats(values: Any, k: int) -> np.ndarray:
    """Per-event numbers as float64; None or unparsable entries become NaN."""
    try:
        out = np.asarray(values, dtype=float)
        if out.shape == (k,):
            return out
    except (ValueError, TypeError):
        pass
    out = np.full(k, np.nan)
    for i, v in enumerate(values):
        with contextlib.suppress(TypeError, ValueError):
            out[i] = float(v)
    return out


def collect(documents: Iterable[tuple[str, Mapping[str, Any]]], **kwargs: Any) -> SpectraCollector:
    """Feed ``(name, doc)`` pairs (e.g. ``run.documents()``) to a new collector."""
    collector = SpectraCollector(**kwargs)
    for name, doc in documents:
        collector(name, dict(doc))
    return collector
