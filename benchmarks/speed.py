"""Speed benchmark: inference µs/curve and curves/s (eager vs BN-fused, optionally TorchScript;
several batch sizes), and pretraining s/epoch per method on simulated curves.

    python benchmarks/speed.py [--length 4000] [--curves 4096] [--train-curves 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from specflow.models.convsc import ConvSCEncoder, FusedConvSC


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
    from specflow.data.simulate import simulate_run
    from specflow.learn.pretrain import PretrainConfig, pretrain

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=4000)
    ap.add_argument("--curves", type=int, default=4096)
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64, 256])
    ap.add_argument("--train-curves", type=int, default=1000)
    ap.add_argument("--train-methods", nargs="+", default=["rrmoco", "rr", "moco", "selftime"])
    ap.add_argument("--train-epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--jit", action="store_true", help="also time a TorchScript-frozen copy")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, L={args.length}")
    print(f"\n{'variant':>10} {'batch':>6} {'curves/s':>10} {'µs/curve':>9}")
    rows = inference_table(args.length, args.curves, args.batches, args.jit)
    for name, b, cps, us in rows:
        print(f"{name:>10} {b:>6} {cps:>10.0f} {us:>9.1f}")
    best = max(rows, key=lambda r: r[2])
    print(f"best: {best[0]} batch {best[1]}: {best[2]:.0f} curves/s ({best[3]:.1f} µs/curve)")
    print(f"\n{'decode n':>10} {'s':>8} {'curves/s':>10}")
    for n, sec, cps in decode_table([1_000, 10_000]):
        print(f"{n:>10} {sec:>8.3f} {cps:>10.0f}")
    if args.train_curves:
        print(f"\npretraining, quick preset, {args.train_curves} curves × {args.length} points")
        print(f"{'method':>10} {'K':>3} {'batch':>6} {'s/epoch':>8}")
        for method, k, b, s in pretrain_table(args.train_curves, args.train_methods,
                                              args.train_epochs):
            print(f"{method:>10} {k:>3} {b:>6} {s:>8.1f}")


if __name__ == "__main__":
    main()
