"""ConvSC-attention encoder (§2, the SSL variant ``ConvSC_NoFdfwd``).

Input (B, L) or (B, 1, L) intensity curves of any length L ≥ ~30; output h ∈ ℝ¹²⁸ (non-negative).
37,636 parameters. :func:`reference_key_map` maps the authors' checkpoint names onto ours.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor, nn
from torch.nn import functional as F

InitScheme = Literal["reference", "pytorch"]
INIT_SCHEMES: tuple[str, ...] = get_args(InitScheme)


class ChannelAttention(nn.Module):
    """DANet channel attention module without projections; ``gamma`` starts at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        energy = x @ x.transpose(1, 2)  # (B, C, C)
        energy = energy.amax(dim=-1, keepdim=True) - energy
        attn = torch.softmax(energy, dim=-1)
        return self.gamma * (attn @ x) + x


class ConvSCEncoder(nn.Module):
    """Conv stem → adaptive pool → embedding → spatial + channel attention → 1×1 conv.

    Args:
        pool_len: adaptive-pool length after the second conv block (236 in the reference).
        channels: channels after the second conv (16), i.e. attention embedding size.
        dim: output feature size (128).
        heads: spatial attention heads (2).
        init: ``"reference"`` (Conv/Linear and BN scales N(0, 0.05)) or ``"pytorch"`` defaults.
    """

    def __init__(
        self,
        pool_len: int = 236,
        channels: int = 16,
        dim: int = 128,
        heads: int = 2,
        init: InitScheme = "reference",
    ) -> None:
        super().__init__()
        self.dim = dim
        self.conv1 = nn.Sequential(
            nn.Conv1d(1, 64, 5, stride=2), nn.BatchNorm1d(64), nn.ReLU(), nn.MaxPool1d(2)
        )
        self.conv2 = nn.Sequential(
            nn.Conv1d(64, channels, 5),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.AdaptiveAvgPool1d(pool_len),
        )
        self.embed = nn.Sequential(nn.Linear(pool_len, dim), nn.LayerNorm(dim))
        self.spatial_attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.channel_attn = ChannelAttention()
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Sequential(nn.Conv1d(channels, 1, 1), nn.BatchNorm1d(1), nn.ReLU())
        if init == "reference":
            self.reset_reference()

    def reset_reference(self, std: float = 0.05) -> None:
        """Reference init: Conv1d/Linear weights and BN scales ~ N(0, std) (sic, spec §2)."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d | nn.Linear | nn.BatchNorm1d):
                nn.init.normal_(m.weight, 0.0, std)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        x = self.conv2(self.conv1(x))  # (B, C, pool_len)
        x = self.embed(x)  # (B, C, dim)
        tokens = x.transpose(1, 2)  # (B, dim, C): positions are tokens
        s, _ = self.spatial_attn(tokens, tokens, tokens, need_weights=False)
        z = self.norm(x + s.transpose(1, 2) + self.channel_attn(x))
        return self.out(z).flatten(1)


def inference_batch_size(device: torch.device | str) -> int:
    """Curves per forward pass at inference: 16 on CPU (the first conv's activations stay in
    cache, benchmarks/speed.py; benchmarks/registry.py ran 2× slower at 32), 4096 on CUDA."""
    return 4096 if torch.device(device).type == "cuda" else 16


class FusedConvSC(nn.Module):
    """Inference-only copy of an eval-mode encoder: BatchNorm folded into the convolutions and
    max-pool applied before ReLU (they commute), which saves memory passes. Same outputs."""

    def __init__(self, encoder: ConvSCEncoder) -> None:
        super().__init__()
        enc = encoder.eval()
        self.conv1 = _fold(enc.conv1[0], enc.conv1[1])
        self.conv2 = _fold(enc.conv2[0], enc.conv2[1])
        self.conv_out = _fold(enc.out[0], enc.out[1])
        self.pool_len = enc.conv2[4].output_size
        # copies, not shared modules: freezing them must not freeze the encoder being trained
        self.embed, self.spatial_attn = copy.deepcopy(enc.embed), copy.deepcopy(enc.spatial_attn)
        self.channel_attn, self.norm = copy.deepcopy(enc.channel_attn), copy.deepcopy(enc.norm)
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        x = F.relu(F.max_pool1d(self.conv1(x), 2))
        x = F.relu(F.max_pool1d(self.conv2(x), 2))
        x = self.embed(F.adaptive_avg_pool1d(x, self.pool_len))
        tokens = x.transpose(1, 2)
        s, _ = self.spatial_attn(tokens, tokens, tokens, need_weights=False)
        z = self.norm(x + s.transpose(1, 2) + self.channel_attn(x))
        return F.relu(self.conv_out(z)).flatten(1)


def _fold(conv: nn.Conv1d, bn: nn.BatchNorm1d) -> nn.Conv1d:
    """Conv1d equal to bn(conv(x)) in eval mode."""
    fused = nn.Conv1d(conv.in_channels, conv.out_channels, conv.kernel_size[0],
                      stride=conv.stride[0])
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None])
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused.to(conv.weight.device)


# Reference checkpoint name → specflow name (prefix-level, applied to encoder sub-keys).
_ENCODER_RENAMES = (
    ("conv1.", "conv1."),
    ("conv3.", "conv2."),
    ("dec_conv3.", "out."),
    ("embeding.", "embed."),
    ("MultiHeadAttention.", "spatial_attn."),
    ("C_Attention_F.", "channel_attn."),
    ("LayerNorm.", "norm."),
)


def map_encoder_key(key: str) -> str:
    """Map one reference encoder key (without ``encoder_q.encoder.``) to ours."""
    for old, new in _ENCODER_RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    raise KeyError(f"unknown reference encoder key {key!r}")


def reference_key_map(keys: list[str]) -> dict[str, str]:
    """Map reference ``ModelMoCo`` state-dict keys to :class:`~specflow.learn.pretrain.SSLModel`.

    Keys of heads and the key encoder are mapped too; the queue goes to ``moco.queue``.
    """
    heads = {
        "encoder_q.head.": "projector.net.",
        "encoder_k.head.": "moco.key_projector.net.",
        "relation_head.head.": "inter_head.net.",
        "cls_head.head.": "intra_head.net.",
        "tmp_cls_head.head.": "tmp_head.net.",
    }
    out: dict[str, str] = {}
    for k in keys:
        if k == "queue":
            out[k] = "moco.queue"
        elif k == "queue_ptr":
            out[k] = "moco.queue_ptr"
        elif k.startswith("encoder_q.encoder."):
            out[k] = "encoder." + map_encoder_key(k[len("encoder_q.encoder.") :])
        elif k.startswith("encoder_k.encoder."):
            out[k] = "moco.key_encoder." + map_encoder_key(k[len("encoder_k.encoder.") :])
        else:
            prefix = next((p for p in heads if k.startswith(p)), None)
            if prefix is None:
                raise KeyError(f"unknown reference key {k!r}")
            out[k] = heads[prefix] + k[len(prefix) :]
    return out


def reference_dir() -> Path | None:
    """Folder of the authors' released files (``$SPECFLOW_REFERENCE_DIR``), None if unset."""
    env = os.environ.get("SPECFLOW_REFERENCE_DIR")
    return Path(env) if env else None


def load_reference_state(path: str | Path, trusted: bool = False) -> dict[str, Tensor]:
    """Read the reference checkpoint's ``state_dict``.

    Loaded with ``weights_only=True`` (tensors, plain containers and ``argparse.Namespace``
    hyper-parameters; no code runs). A checkpoint holding other Python objects needs
    ``trusted=True`` — full unpickling, which can run code: only for a file you trust.
    """

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trusted:
            raise ValueError(
                f"{path}: the checkpoint holds Python objects beyond tensors; load it with "
                "trusted=True only if you trust the file (unpickling can run code)") from exc
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=False)
    return ckpt.get("state_dict", ckpt)


def load_reference_encoder(
    path: str | Path, encoder: ConvSCEncoder | None = None, which: str = "encoder_q"
) -> ConvSCEncoder:
    """Load the query (or key) encoder of the reference checkpoint, strictly, into ``encoder``."""
    state = load_reference_state(path)
    prefix = f"{which}.encoder."
    mapped = {
        map_encoder_key(k[len(prefix) :]): v for k, v in state.items() if k.startswith(prefix)
    }
    if not mapped:
        raise KeyError(f"no {prefix!r} tensors in {path}")
    encoder = encoder or ConvSCEncoder(init="pytorch")
    encoder.load_state_dict(mapped, strict=True)
    return encoder


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "ChannelAttention",
    "ConvSCEncoder",
    "FusedConvSC",
    "count_parameters",
    "load_reference_encoder",
    "load_reference_state",
    "map_encoder_key",
    "reference_dir",
    "reference_key_map",
]

