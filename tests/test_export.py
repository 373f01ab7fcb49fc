"""The encoder exported to ONNX: same features as PyTorch at any input length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specflow.models.convsc import ConvSCEncoder, FusedConvSC
from specflow.models.export import ExportableConvSC, onnx_encoder, self_attention


@pytest.fixture(scope="module")
def encoder() -> ConvSCEncoder:
    """An encoder whose every part matters: BatchNorm statistics away from identity and
    channel attention switched on (gamma starts at 0)."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        enc = ConvSCEncoder(init="pytorch").eval()
        for m in enc.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
        enc.channel_attn.gamma.data.fill_(0.7)
    return enc


def test_self_attention_matches_multihead_attention():
    attn = torch.nn.MultiheadAttention(16, 2, batch_first=True).eval()
    tokens = torch.randn(3, 40, 16)
    with torch.no_grad():
        expected, _ = attn(tokens, tokens, tokens, need_weights=False)
        torch.testing.assert_close(self_attention(attn, tokens), expected, atol=1e-5,
                                   rtol=1e-5)


@pytest.mark.parametrize("length", [1024, 2048, 4000])
def test_exported_encoder_matches_torch(encoder, length):
    x = torch.rand(9, length)
    with torch.inference_mode():
        expected = encoder(x)
        folded = ExportableConvSC(FusedConvSC(encoder), length)(x)
    assert expected.abs().max() > 0.1  # not a dead network
    torch.testing.assert_close(folded, expected, atol=1e-5, rtol=1e-5)
    onnx = onnx_encoder(FusedConvSC(encoder), length, threads=1)
    torch.testing.assert_close(onnx(x), expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(onnx(x.numpy()).numpy(), expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match=f"curves of {length} points"):
        onnx(torch.rand(2, length + 1))
