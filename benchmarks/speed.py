"""Speed benchmark: the whole inference path of a trained model (preprocessing, encoder,
probe, OOD score, decoding) with each acceleration as a ratio to eager PyTorch in one run and
its labels compared with eager's; encoder-only curves/s by batch size; decoding; pretraining
s/epoch per method; ``default``: the default model as served against the path before;
``bound``: what bounds its network (multiply–adds per curve against a large matrix
product's rate on one core).

    python benchmarks/speed.py [--quick]
        [--sections default bound whole encoder decode pretrain]
        [--json benchmarks/results/speed.json]

Goal: the whole path at ≥ 10,000 curves/s on this 2-core CPU with labels
unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from specflow.models.convsc import ConvSCEncoder, FusedConvSC
from specflow.models.export import onnx_encoder


def curves_per_second(model, x: torch.Tensor, batch: int, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over x in batches, in curves per second."""
    with torch.inference_mode():
        model(x[:batch])  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(0, len(x), batch):
                model(x[i:i + batch])
            best = min(best, time.perf_counter() - t0)
    return len(x) / best


def frozen(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """TorchScript trace + freeze + optimize_for_inference (oneDNN fusions on CPU)."""
    with torch.inference_mode():
        traced = torch.jit.trace(model, example, check_trace=False)
    return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))


def inference_table(length: int, n: int, batches: list[int], jit: bool = False) -> list[tuple]:
    torch.manual_seed(0)
    enc = ConvSCEncoder(init="pytorch").eval()
    x = torch.rand(n, length)
    variants = {"eager": enc, "fused": FusedConvSC(enc)}
    try:
        variants["onnx"] = onnx_encoder(variants["fused"], length)
    except ImportError as err:
        print(f"ONNX Runtime variant skipped: {err}")
    if jit:
        try:
            variants["fused+jit"] = frozen(FusedConvSC(enc), x[:batches[0]])
        except Exception as err:  # noqa: BLE001 - report and continue
            print(f"TorchScript variant skipped: {err}")
    rows = []
    for name, model in variants.items():
        for b in batches:
            cps = curves_per_second(model, x, b)
            rows.append((name, b, cps, 1e6 / cps))
    return rows


def pretrain_table(n_curves: int, methods: list[str], epochs: int) -> list[tuple]:
    from specflow.learn.pretrain import PretrainConfig, pretrain
    from specflow.simulator.simulate import simulate_run

    data = [simulate_run("Fe", n_curves // 2, seed=0), simulate_run("FeO", n_curves // 2, seed=1)]
    rows = []
    for method in methods:
        cfg = PretrainConfig.quick(method=method, epochs=epochs, device="cpu")
        hist = pretrain(data, cfg).history
        rows.append((method, cfg.n_views, cfg.batch_size, min(h["epoch_s"] for h in hist)))
    return rows


def decode_table(sizes: list[int]) -> list[tuple]:
    """Sequence decoding (specflow.learn.decode) of an up/down run of n noisy curves."""
    import time

    from specflow.learn.decode import decode

    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        up = n * 3 // 5
        pressure = np.concatenate([np.linspace(0, 40, up), np.linspace(40, 0, n - up)])
        truth = np.where(pressure > 20, 2, np.where(pressure > 15, 1, 0))
        logits = 3.0 * np.eye(3)[truth] + rng.standard_normal((n, 3))
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            decode(probs, pressure + 0.5 * rng.standard_normal(n))
            best = min(best, time.perf_counter() - t0)
        rows.append((n, best, n / best))
    return rows


# --- the whole inference path ---------------------------------------------------------------

GOAL_CURVES_PER_S = 10_000  # whole path, this 2-core CPU, labels unchanged


def trained_bundle(epochs: int) -> dict:
    """A real model: SpecRRMoco (quick preset) + linear probe + decoder on three simulated runs
    (Q grid of 2048 points, SNIP baseline: the default preprocessing)."""
    from specflow.learn.classifier import PhaseClassifier
    from specflow.simulator.simulate import simulate_run

    runs = [simulate_run("Fe", 120, seed=0), simulate_run("Fe", 120, seed=1),
            simulate_run("FeO", 120, seed=2)]
    clf = PhaseClassifier(method="rrmoco", preset="quick", epochs=epochs, device="cpu")
    return clf.fit(runs).bundle_


def test_runs(n_runs: int, curves: int) -> list[tuple]:
    """Fresh runs (seeds the model never saw), raw: 4000 points on their own 2θ grid."""
    from specflow.learn.data import wavelength_of
    from specflow.simulator.simulate import simulate_run

    out = []
    for i in range(n_runs):
        ds = simulate_run("Fe" if i % 2 == 0 else "FeO", curves, seed=1000 + i)
        out.append((ds["intensity"].values.astype(np.float32), ds["two_theta"].values,
                    wavelength_of(ds), ds["pressure"].values))
    return out


def pybaselines_loop(x: np.ndarray, half_window: int, chunk: int = 0) -> np.ndarray:
    """The previous baseline step: pybaselines' snip called once per curve."""
    from pybaselines import Baseline

    fitter = Baseline(np.arange(x.shape[1], dtype=float))
    return np.stack([fitter.snip(y.astype(float), max_half_window=half_window)[0] for y in x])


class Autocast:
    """An encoder run under CPU bfloat16 autocast (features returned as float32)."""

    def __init__(self, encoder):
        self.encoder = encoder

    def __call__(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.encoder(x).float()


def int8_static_onnx(fused, length: int, calibration: np.ndarray, threads: int):
    """ONNX Runtime, int8 weights and activations (QDQ, per channel), calibrated on curves."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from specflow.models.export import OnnxEncoder, onnx_bytes

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"curves": calibration[i:i + 64]}
                                 for i in range(0, len(calibration), 64)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(onnx_bytes(fused, length))
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "MatMul"])
        return OnnxEncoder(dst.read_bytes(), length, threads)


def variants(bundle: dict, threads: int, calibration: np.ndarray) -> dict:
    """Name → predictor: eager PyTorch and each acceleration of its encoder."""
    import copy

    from torch.ao.quantization import quantize_dynamic

    from specflow.learn.predictor import PhasePredictor

    length = len(bundle["grid"])
    out = {"eager": PhasePredictor(bundle)}
    compiled = PhasePredictor(bundle)
    compiled.encoder = torch.compile(compiled.encoder, dynamic=False)
    out["torch.compile"] = compiled
    out["onnx runtime"] = PhasePredictor(bundle, backend="onnx")
    static = PhasePredictor(bundle)
    static.encoder = int8_static_onnx(static.encoder, length, calibration, threads)
    static.batch_size = out["onnx runtime"].batch_size
    out["onnx int8 static"] = static
    dynamic = PhasePredictor(bundle)
    dynamic.encoder = quantize_dynamic(copy.deepcopy(dynamic.encoder), {torch.nn.Linear},
                                       dtype=torch.qint8)
    out["torch int8 dynamic"] = dynamic
    bf16 = PhasePredictor(bundle)
    bf16.encoder = Autocast(bf16.encoder)
    out["bf16 autocast"] = bf16
    return out


def predict_all(predictor, runs: list[tuple]) -> tuple[float, list[dict]]:
    """Seconds to predict every run (one call per run, as annotation does), and the outputs."""
    t0 = time.perf_counter()
    outputs = [predictor.predict(*run) for run in runs]
    return time.perf_counter() - t0, outputs


class PerCurveBaselines:
    """Context: the previous per-curve pybaselines loop in place of the batched SNIP."""

    def __enter__(self):
        from specflow.data import preprocess

        self.batched, preprocess.snip_baselines = preprocess.snip_baselines, pybaselines_loop

    def __exit__(self, *exc):
        from specflow.data import preprocess

        preprocess.snip_baselines = self.batched


def numpy_despike(x: np.ndarray, threshold: float = 8.0) -> np.ndarray:
    """The previous ``despike``: numpy over the whole block, the medians from ``np.partition``
    (the same spikes as the compiled kernel, bit for bit: tests/test_preprocess.py)."""
    x = np.array(x, dtype=np.float32, copy=True)
    if threshold <= 0 or x.shape[1] < 3:
        return x

    def medians(a: np.ndarray) -> np.ndarray:
        k = a.shape[1] // 2
        if a.shape[1] % 2:
            return np.partition(a, k, axis=1)[:, k:k + 1]
        part = np.partition(a, (k - 1, k), axis=1)
        return (part[:, k - 1:k] + part[:, k:k + 1]) / 2

    left, mid, right = x[:, :-2], x[:, 1:-1], x[:, 2:]
    diff = np.diff(x, axis=1)
    sigma = 1.4826 * medians(np.abs(diff - medians(diff))) / np.float32(np.sqrt(2))
    spike = mid - np.maximum(left, right) > threshold * np.maximum(sigma, 1e-12)
    mid[spike] = ((left + right) / 2)[spike]
    return x


def numpy_snip_baselines(x: np.ndarray, half_window: int, chunk: int = 32,
                         threads: int | None = None) -> np.ndarray:
    """The previous ``snip_baselines``: each window one numpy pass over a block of rows."""
    from concurrent.futures import ThreadPoolExecutor

    from specflow.data.preprocess import _extrapolated, usable_cpus

    x = np.asarray(x, dtype=np.float64)
    w = int(min(half_window, (x.shape[1] - 1) // 2))
    out = np.empty_like(x)

    def block(s: int) -> None:
        y = _extrapolated(x[s:s + chunk], w)
        size = y.shape[1]
        filt = np.empty_like(y)
        for i in range(1, w + 1):
            f = filt[:, : size - 2 * i]
            np.add(y[:, : size - 2 * i], y[:, 2 * i:], out=f)
            f *= 0.5
            np.minimum(y[:, i: size - i], f, out=y[:, i: size - i])
        out[s:s + chunk] = y[:, w: size - w]

    starts = range(0, len(x), chunk)
    with ThreadPoolExecutor(min(threads or min(4, usable_cpus()), len(starts))) as pool:
        list(pool.map(block, starts))
    return out


class NumpyKernels:
    """Context: despiking and SNIP as numpy expressions (the path before the compiled
    kernels of :mod:`specflow.data.kernels`)."""

    def __enter__(self):
        from specflow.data import preprocess

        self.saved = preprocess.despike, preprocess.snip_baselines
        preprocess.despike, preprocess.snip_baselines = numpy_despike, numpy_snip_baselines

    def __exit__(self, *exc):
        from specflow.data import preprocess

        preprocess.despike, preprocess.snip_baselines = self.saved


def agreement(outputs: list[dict], reference: list[dict]) -> dict:
    """How many labels differ from the reference outputs, and the largest probability gap."""
    label = np.concatenate([o["label"] for o in outputs])
    raw = np.concatenate([o["label_raw"] for o in outputs])
    ref_label = np.concatenate([o["label"] for o in reference])
    ref_raw = np.concatenate([o["label_raw"] for o in reference])
    dp = max(float(np.abs(o["probabilities"] - r["probabilities"]).max())
             for o, r in zip(outputs, reference, strict=True))
    return {"labels_changed": int((label != ref_label).sum()),
            "raw_labels_changed": int((raw != ref_raw).sum()), "max_dp": dp}


def stage_times(predictor, runs: list[tuple], repeats: int) -> dict:
    """Seconds per curve of each stage of the eager path, best of ``repeats``."""
    n = sum(len(r[0]) for r in runs)
    best = {"prepare": np.inf, "encoder": np.inf, "probe, OOD, decode": np.inf}
    for _ in range(repeats):
        t = dict.fromkeys(best, 0.0)
        for x, tt, wl, p in runs:
            t0 = time.perf_counter()
            prepared = predictor.prepare(x, tt, wl)
            t1 = time.perf_counter()
            predictor.features(prepared)
            t2 = time.perf_counter()
            predictor.predict(x, tt, wl, p)
            t3 = time.perf_counter()
            t["prepare"] += t1 - t0
            t["encoder"] += t2 - t1
            t["probe, OOD, decode"] += max(0.0, (t3 - t2) - (t2 - t0))
        best = {k: min(best[k], t[k] / n) for k in best}
    return best


def timed_table(runs: list[tuple], threads: list[int], repeats: int,
                make_variants: Callable[[int], dict], before: str, eager: str,
                labels_against: str, within: Callable[[str], Any] | None = None) -> dict:
    """Every variant ``make_variants(threads)`` gives, at each thread count, as curves/s,
    ratios to ``before`` and ``eager`` and label changes against ``labels_against``;
    ``within(name)``: a context each variant's timing runs in.

    Variants are timed in rounds (each round times every variant once) and the best round
    counts, so a burst of load on the shared machine hits all variants alike."""
    n = sum(len(r[0]) for r in runs)
    rows, stages = [], {}
    for t in threads:
        torch.set_num_threads(t)
        found = make_variants(t)
        for predictor in found.values():
            predictor.predict(*runs[0])  # warm-up: compilation, allocator, ONNX sessions
        best = dict.fromkeys(found, float("inf"))
        outputs: dict[str, list[dict]] = {}
        for _ in range(repeats):
            for name, predictor in found.items():
                with within(name) if within else contextlib.nullcontext():
                    sec, outputs[name] = predict_all(predictor, runs)
                best[name] = min(best[name], sec)
        stages[t] = stage_times(found[eager], runs, repeats)
        for name, sec in best.items():
            rows.append({"threads": t, "variant": name, "curves_per_s": n / sec,
                         "us_per_curve": 1e6 * sec / n, "vs_before": best[before] / sec,
                         "vs_eager": best[eager] / sec,
                         **agreement(outputs[name], outputs[labels_against])})
    return {"curves": n, "runs": len(runs), "rows": rows,
            "stages_us_per_curve": {t: {k: 1e6 * v for k, v in s.items()}
                                    for t, s in stages.items()}}


def whole_path_table(runs: list[tuple], bundle: dict, threads: list[int], repeats: int) -> dict:
    """Every acceleration of an SSL-encoder model against eager PyTorch, and the path
    before the batched SNIP (:func:`timed_table`)."""
    from specflow.learn.predictor import PhasePredictor

    calibration = PhasePredictor(bundle).prepare(*runs[0][:3])
    before = "eager, per-curve pybaselines (before)"
    return timed_table(
        runs, threads, repeats,
        lambda t: {before: PhasePredictor(bundle), **variants(bundle, t, calibration)},
        before, "eager", "eager",
        lambda name: PerCurveBaselines() if name == before else contextlib.nullcontext())


def default_bundle() -> dict:
    """The default model: the Fe corpus network shipped with specflow, its head adapted to
    three simulated Fe runs (``PhaseClassifier()``)."""
    from specflow.learn.classifier import PhaseClassifier
    from specflow.simulator.simulate import simulate_run

    return PhaseClassifier(device="cpu").fit(
        [simulate_run("Fe", 120, seed=s) for s in range(3)]).bundle_


def default_path_table(runs: list[tuple], bundle: dict, threads: list[int],
                       repeats: int) -> dict:
    """The default (corpus-network) model's whole path as served (curves prepared in
    blocks of 64 on threads, despiking and SNIP compiled, BatchNorms folded into the
    convolutions, each pool before its ReLU, batches of 16) against the path before
    (despiking and SNIP as numpy expressions, ReLU before pool: :class:`NumpyKernels`,
    ``fold_batch_norms(pool_first=False)``), the pool-first change undone alone, the network
    as trained (unfolded, batches of 64) and other batch sizes (:func:`timed_table`)."""
    from specflow.learn.predictor import NETWORK_CPU_BATCH, PhasePredictor
    from specflow.models.supervised import build_network, fold_batch_norms

    spec = bundle["network"]
    before = "previous path (before)"

    def served_and_before(_threads: int) -> dict:
        found = {before: PhasePredictor(bundle), "served": PhasePredictor(bundle),
                 "served, ReLU before pool": PhasePredictor(bundle),
                 "unfolded BatchNorm, batch 64": PhasePredictor(bundle)}
        unfolded = build_network(spec["arch"], len(bundle["grid"]), **spec["kwargs"])
        unfolded.load_state_dict(spec["state"])
        for name in (before, "served, ReLU before pool"):
            found[name].network = fold_batch_norms(unfolded, pool_first=False)
        found["unfolded BatchNorm, batch 64"].network = unfolded.eval()
        found["unfolded BatchNorm, batch 64"].batch_size = 64
        for size in sorted({16, 64, 256} - {NETWORK_CPU_BATCH}):
            found[f"served, batch {size}"] = PhasePredictor(bundle)
            found[f"served, batch {size}"].batch_size = size
        return found

    return timed_table(
        runs, threads, repeats, served_and_before, before, "served", before,
        lambda name: NumpyKernels() if name == before else contextlib.nullcontext())


def multiply_adds(net: torch.nn.Module, length: int) -> tuple[int, tuple[int, int, int]]:
    """Multiply–adds per curve of the convolutions and linear layers of ``net`` (counted
    from their output shapes on one curve of ``length`` points), and the largest
    convolution as a matrix product per curve: (output positions, inputs × taps, outputs)."""
    total, largest, shape = 0, 0, (0, 0, 0)

    def count(module: torch.nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total, largest, shape
        if isinstance(module, torch.nn.Conv1d):
            taps = module.in_channels // module.groups * module.kernel_size[0]
            macs = output.numel() * taps
            if macs > largest:
                largest, shape = macs, (output.shape[-1], taps, module.out_channels)
        else:
            macs = output.numel() * module.in_features
        total += macs

    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, torch.nn.Conv1d | torch.nn.Linear)]
    with torch.inference_mode():
        net(torch.rand(1, length))
    for h in hooks:
        h.remove()
    return total, shape


def network_bound(bundle: dict, repeats: int = 5) -> dict:
    """What bounds the network, on one core, back to back: its multiply–adds per curve and
    rate as served (batches of :data:`NETWORK_CPU_BATCH`), and the rate of a float32 matrix
    product shaped like its largest convolution over such a batch (im2col: positions ×
    inputs·taps @ inputs·taps × outputs), the most that layer could reach here."""
    from specflow.learn.predictor import NETWORK_CPU_BATCH, PhasePredictor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = PhasePredictor(bundle).network
        length = len(bundle["grid"])
        macs, (rows, inner, cols) = multiply_adds(net, length)
        a = torch.rand(NETWORK_CPU_BATCH * rows, inner)
        b = torch.rand(inner, cols)
        x = torch.rand(1024, length)
        gemm = rate = 0.0
        products = max(1, 64 // NETWORK_CPU_BATCH)  # 64 curves' worth per timing
        with torch.inference_mode():
            a @ b
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(products):
                    a @ b
                gemm = max(gemm, products * a.shape[0] * inner * cols
                           / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                for i in range(0, len(x), NETWORK_CPU_BATCH):
                    net(x[i:i + NETWORK_CPU_BATCH])
                rate = max(rate, len(x) * macs / (time.perf_counter() - t0))
    finally:
        torch.set_num_threads(threads)
    return {"macs_per_curve": macs, "largest": (rows, inner, cols),
            "gemm_macs_per_s": gemm, "network_macs_per_s": rate}


def print_bound(bound: dict, cores: int = 2) -> None:
    macs, gemm, rate = (bound["macs_per_curve"], bound["gemm_macs_per_s"],
                        bound["network_macs_per_s"])
    rows, inner, cols = bound["largest"]
    share = rows * inner * cols / macs
    print(f"network bound, one core: {macs / 1e6:.2f} M multiply–adds per curve, "
          f"{rate / 1e9:.1f} G/s as served ({rate / macs:,.0f} curves/s); its largest "
          f"convolution ({share:.0%} of them) as a {rows}×{inner} @ {inner}×{cols} float32 "
          f"matrix product per curve: {gemm / 1e9:.1f} G/s; the whole network at that rate "
          f"on {cores} cores: {cores * gemm / macs:,.0f} curves/s")


def print_whole(result: dict) -> None:
    print(f"\nwhole path (prepare → encoder → probe → OOD → decode), {result['runs']} fresh "
          f"runs, {result['curves']} curves × 4000 points → Q grid of 2048")
    print(f"{'threads':>7} {'variant':>40} {'curves/s':>9} {'µs/curve':>9} {'×before':>8} "
          f"{'×eager':>7} {'labels Δ':>8} {'raw Δ':>6} {'max |Δp|':>9}")
    for r in result["rows"]:
        print(f"{r['threads']:>7} {r['variant']:>40} {r['curves_per_s']:>9,.0f} "
              f"{r['us_per_curve']:>9.1f} {r['vs_before']:>8.2f} {r['vs_eager']:>7.2f} "
              f"{r['labels_changed']:>8} {r['raw_labels_changed']:>6} {r['max_dp']:>9.1e}")
    for t, s in result["stages_us_per_curve"].items():
        parts = ", ".join(f"{k} {v:.0f}" for k, v in s.items())
        print(f"eager stages, {t} thread(s), µs/curve: {parts}")
    best = max(result["rows"], key=lambda r: r["curves_per_s"] if r["labels_changed"] == 0
               else 0)
    verdict = "met" if best["curves_per_s"] >= GOAL_CURVES_PER_S else "NOT met"
    print(f"goal ≥ {GOAL_CURVES_PER_S:,} curves/s with labels unchanged: {verdict} — best "
          f"{best['variant']} at {best['threads']} thread(s): {best['curves_per_s']:,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer curves, 2 repeats, 1 epoch")
    ap.add_argument("--sections", nargs="+",
                    default=["default", "whole", "encoder", "decode"],
                    choices=["default", "bound", "whole", "encoder", "decode", "pretrain"])
    ap.add_argument("--length", type=int, default=2048, help="encoder table: points per curve")
    ap.add_argument("--curves", type=int, default=4096, help="encoder table: curves")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 64, 256])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--train-curves", type=int, default=1000)
    ap.add_argument("--train-methods", nargs="+", default=["rrmoco", "rr", "moco", "selftime"])
    ap.add_argument("--train-epochs", type=int, default=2)
    ap.add_argument("--jit", action="store_true", help="also time a TorchScript-frozen copy")
    ap.add_argument("--json", default=None, help="write the whole-path table here")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    if "default" in args.sections:
        runs = test_runs(4 if args.quick else 8, 250)
        bundle = default_bundle()
        result = default_path_table(runs, bundle, args.threads, 2 if args.quick else 3)
        print("\ndefault model (corpus CNN); ×eager: as a ratio to the served path")
        print_whole(result)
    if "bound" in args.sections or "default" in args.sections:
        print_bound(network_bound(bundle if "default" in args.sections else default_bundle()))
    if "whole" in args.sections:
        runs = test_runs(4 if args.quick else 8, 250)
        result = whole_path_table(runs, trained_bundle(1 if args.quick else 2), args.threads,
                                  2 if args.quick else 3)
        print_whole(result)
        if args.json:
            import json
            from pathlib import Path

            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    torch.set_num_threads(max(args.threads))
    if "encoder" in args.sections:
        print(f"\nencoder only, {torch.get_num_threads()} threads, L={args.length}")
        print(f"{'variant':>10} {'batch':>6} {'curves/s':>10} {'µs/curve':>9}")
        rows = inference_table(args.length, args.curves // (4 if args.quick else 1),
                               args.batches, args.jit)
        for name, b, cps, us in rows:
            print(f"{name:>10} {b:>6} {cps:>10.0f} {us:>9.1f}")
    if "decode" in args.sections:
        print(f"\n{'decode n':>10} {'s':>8} {'curves/s':>10}")
        for n, sec, cps in decode_table([1_000, 10_000]):
            print(f"{n:>10} {sec:>8.3f} {cps:>10.0f}")
    if "pretrain" in args.sections:
        print(f"\npretraining, quick preset, {args.train_curves} curves")
        print(f"{'method':>10} {'K':>3} {'batch':>6} {'s/epoch':>8}")
        for method, k, b, s in pretrain_table(args.train_curves, args.train_methods,
                                              args.train_epochs):
            print(f"{method:>10} {k:>3} {b:>6} {s:>8.1f}")


if __name__ == "__main__":
    main()
