"""Encoder and heads: the paper's architecture (docs/method.md) and the reference checkpoint
mapping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from specflow.learn.pretrain import PretrainConfig, SSLModel
from specflow.models.convsc import (
    ConvSCEncoder,
    count_parameters,
    load_reference_encoder,
    load_reference_state,
    reference_key_map,
)
from specflow.models.heads import (
    ExternalVariableHead,
    InterRelationHead,
    IntraRelationHead,
    LinearClassifier,
    ProjectionHead,
)

REF_DIR = Path(
    os.environ.get("SPECFLOW_REFERENCE_DIR")
    or Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"
)
BACKBONE = REF_DIR / "specrrmoco_feo_backbone.tar"
LINEAR = REF_DIR / "specrrmoco_feo_linear.tar"
needs_reference = pytest.mark.skipif(
    not BACKBONE.exists(),
    reason=f"reference checkpoint not found at {BACKBONE} (set SPECFLOW_REFERENCE_DIR)",
)


def test_parameter_counts():
    enc = ConvSCEncoder()
    assert count_parameters(enc) == 37_636
    assert count_parameters(enc) + count_parameters(ProjectionHead()) == 70_660
    assert count_parameters(InterRelationHead()) == 16_641
    assert count_parameters(IntraRelationHead()) == 16_901
    assert count_parameters(ExternalVariableHead()) == 645


@pytest.mark.parametrize("length", [30, 517, 4000])
def test_any_length_gives_nonnegative_128(length):
    enc = ConvSCEncoder().eval()
    h = enc(torch.rand(3, length))
    assert h.shape == (3, 128)
    assert (h >= 0).all()
    assert enc(torch.rand(3, 1, length)).shape == (3, 128)


def test_reference_init_and_gamma():
    torch.manual_seed(0)
    enc = ConvSCEncoder(init="reference")
    assert enc.channel_attn.gamma.item() == 0.0
    w = enc.embed[0].weight
    assert abs(w.std().item() - 0.05) < 0.005
    assert abs(enc.conv1[1].weight.mean().item()) < 0.03  # BN scales ~ N(0, 0.05) (sic)
    default = ConvSCEncoder(init="pytorch")
    assert torch.all(default.conv1[1].weight == 1)


def test_heads_shapes():
    z = torch.nn.functional.normalize(torch.randn(8, 128), dim=1)
    assert ProjectionHead()(torch.rand(8, 128)).norm(dim=1).allclose(torch.ones(8))
    assert InterRelationHead()(z, z).shape == (8,)
    assert IntraRelationHead()(z, z).shape == (8, 5)
    assert ExternalVariableHead()(z).shape == (8, 5)
    assert LinearClassifier(n_classes=3)(z).shape == (8, 3)


@needs_reference
def test_reference_encoder_loads_strictly():
    enc = load_reference_encoder(BACKBONE)
    assert enc.channel_attn.gamma.item() == pytest.approx(-0.029, abs=1e-3)
    enc.eval()
    h = enc(torch.rand(4, 4000))
    assert torch.isfinite(h).all() and h.shape == (4, 128)
    # Every encoder tensor of the checkpoint is used, with the same shape.
    state = load_reference_state(BACKBONE)
    ref = {k: v for k, v in state.items() if k.startswith("encoder_q.encoder.")}
    assert len(ref) == len(enc.state_dict())


@needs_reference
def test_reference_full_model_maps_every_tensor():
    state = load_reference_state(BACKBONE)
    mapping = reference_key_map(list(state))
    model = SSLModel(PretrainConfig(), queue_size=state["queue"].shape[1])
    missing, unexpected = model.load_state_dict(
        {mapping[k]: v for k, v in state.items()}, strict=True
    )
    assert not missing and not unexpected
    assert model.moco.queue.shape == (128, 1744)


@needs_reference
def test_reference_linear_probe_loads():
    state = torch.load(LINEAR, map_location="cpu", weights_only=False)
    clf = LinearClassifier(n_classes=3)
    clf.load_state_dict({k.replace("linear_layer.", "linear."): v for k, v in state.items()})
    enc = load_reference_encoder(BACKBONE).eval()
    assert clf(enc(torch.rand(2, 4000))).shape == (2, 3)


def test_fused_inference_copy_matches_encoder():
    from specflow.models.convsc import FusedConvSC

    torch.manual_seed(0)
    enc = ConvSCEncoder(init="pytorch")
    enc.train()
    enc(torch.rand(16, 600))  # move BN running statistics away from their defaults
    enc.eval()
    with torch.no_grad():
        enc.channel_attn.gamma.fill_(0.3)
        x = torch.rand(5, 600)
        assert torch.allclose(FusedConvSC(enc)(x), enc(x), atol=1e-5)


def test_fused_copy_leaves_the_trained_encoder_alone():
    """Encoding mid-training (e.g. from an epoch callback) must not freeze any encoder layer."""
    from specflow.models.convsc import FusedConvSC

    enc = ConvSCEncoder(init="pytorch")
    fused = FusedConvSC(enc)
    assert all(p.requires_grad for p in enc.parameters())
    assert not any(p.requires_grad for p in fused.parameters())
    with torch.no_grad():
        enc.norm.weight.add_(1.0)  # later training steps do not leak into the copy either
    assert not torch.equal(enc.norm.weight, fused.norm.weight)
