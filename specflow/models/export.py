"""The encoder for other runtimes: an ONNX graph of one input length, run by ONNX Runtime.

:class:`ExportableConvSC` is :class:`~specflow.models.convsc.FusedConvSC` for a fixed input
length in ops every exporter knows: the adaptive average pool, a fixed linear map at a fixed
length, is folded into the embedding layer, and the attention is written out (PyTorch's fused
attention kernel has no ONNX form). Same outputs up to float rounding (tests).
:func:`onnx_encoder` exports it and returns an :class:`OnnxEncoder`, a callable on tensors
like the torch module. ``onnxruntime`` is optional (``pip install specflow[onnx]``).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from specflow.models.convsc import FusedConvSC


def self_attention(attn: nn.MultiheadAttention, tokens: Tensor) -> Tensor:
    """``attn(tokens, tokens, tokens)[0]`` (batch first, no masks) in plain tensor ops."""
    batch, n, embed = tokens.shape
    heads = attn.num_heads
    qkv = F.linear(tokens, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.reshape(batch, n, 3, heads, embed // heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v)
    return attn.out_proj(out.transpose(1, 2).reshape(batch, n, embed))


class ExportableConvSC(nn.Module):
    """A BN-fused encoder for curves of exactly ``length`` points, in exportable ops."""

    def __init__(self, fused: FusedConvSC, length: int) -> None:
        super().__init__()
        self.fused, self.length = fused, int(length)
        with torch.no_grad():
            stem = self._stem(torch.zeros(1, 1, self.length))
            pool = F.adaptive_avg_pool1d(torch.eye(stem.shape[-1])[None], fused.pool_len)[0]
            linear = fused.embed[0]
            # embed(pool(x)) = x @ (P Wᵀ) + b: one matmul, no pooling pass
            self.embed_weight = nn.Parameter(pool @ linear.weight.T, requires_grad=False)
            self.embed_bias = nn.Parameter(linear.bias.clone(), requires_grad=False)
        self.embed_norm = fused.embed[1]

    def _stem(self, x: Tensor) -> Tensor:
        f = self.fused
        x = F.relu(F.max_pool1d(f.conv1(x), 2))
        return F.relu(F.max_pool1d(f.conv2(x), 2))

    def forward(self, x: Tensor) -> Tensor:
        f = self.fused
        x = self._stem(x.unsqueeze(1))
        x = self.embed_norm(x @ self.embed_weight + self.embed_bias)
        tokens = x.transpose(1, 2)
        s = self_attention(f.spatial_attn, tokens)
        z = f.norm(x + s.transpose(1, 2) + f.channel_attn(x))
        return F.relu(f.conv_out(z)).flatten(1)


def onnx_bytes(fused: FusedConvSC, length: int) -> bytes:
    """The ONNX graph (opset 17, dynamic batch) of ``fused`` for curves of ``length`` points."""
    model = ExportableConvSC(fused.cpu().eval(), length).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter announces its successor
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, length),), buffer, input_names=["curves"],
                          output_names=["features"], dynamic_axes={"curves": {0: "batch"}},
                          opset_version=17, dynamo=False)
    return buffer.getvalue()


class OnnxEncoder:
    """An encoder graph run by ONNX Runtime on the CPU: ``encoder(x)`` maps (n, L) float32
    curves (tensor or array) to (n, D) features as a tensor, like the torch module.

    ``threads``: ONNX Runtime's intra-op threads (default: torch's current number).
    """

    def __init__(self, graph: bytes, length: int, threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError as err:
            raise ImportError("the ONNX backend needs onnxruntime: pip install "
                              "'specflow[onnx]'") from err
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(graph, options,
                                                    providers=["CPUExecutionProvider"])
        self.length = int(length)

    def __call__(self, x: Any) -> Tensor:
        x = x.numpy() if isinstance(x, Tensor) else x
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.length:
            raise ValueError(f"the ONNX encoder takes curves of {self.length} points, "
                             f"got shape {x.shape}")
        return torch.from_numpy(self.session.run(None, {"curves": x})[0])


def onnx_encoder(fused: FusedConvSC, length: int, threads: int | None = None) -> OnnxEncoder:
    """Export ``fused`` for curves of ``length`` points and load it into ONNX Runtime."""
    return OnnxEncoder(onnx_bytes(fused, length), length, threads)


__all__ = ["ExportableConvSC", "OnnxEncoder", "onnx_bytes", "onnx_encoder", "self_attention"]
