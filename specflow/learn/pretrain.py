"""One self-supervised trainer for SpecRR, SpecMoco, SpecRRMoco and SpecSelfTime.

L = L_inter + L_intra + L_tmp + c·L_cont (§3.6). ``method`` picks the terms:

* ``rrmoco``: all four, c = ``contrast_coef`` (0: MoCo runs without gradient; inf: L_cont only,
  the relation heads are still evaluated for logging);
* ``rr``: inter + intra + external variable; ``selftime``: inter + intra;
* ``moco``: L_cont only.

The loop takes Datasets or arrays and reports through ``on_epoch(epoch, metrics)``; it knows
nothing of tracking servers. A long run can keep its whole training state in one file
(``state=``): written after every epoch, it lets a stopped run go on where it stopped, with
the same weights an uninterrupted run reaches.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn

from specflow.data.augment import check_augmentation, make_augmentation
from specflow.data.preprocess import Preprocessing, minmax
from specflow.learn.data import EXTERNAL_TARGETS, Curves, external_targets, to_curves
from specflow.learn.devices import check_device, resolve_device
from specflow.learn.losses import (
    external_variable_loss,
    inter_relation_loss,
    intra_pieces,
    intra_relation_loss,
)
from specflow.learn.moco import MoCo
from specflow.learn.names import SSL_METHODS
from specflow.learn.schedule import learning_rate
from specflow.models.convsc import (
    INIT_SCHEMES,
    ConvSCEncoder,
    FusedConvSC,
    inference_batch_size,
)
from specflow.models.heads import (
    ExternalVariableHead,
    InterRelationHead,
    IntraRelationHead,
    ProjectionHead,
)

METHODS = SSL_METHODS
TMP_TARGETS = EXTERNAL_TARGETS
EpochCallback = Callable[[int, dict[str, float]], None]
CheckpointCallback = Callable[[int, "SSLModel"], None]


@dataclass
class PretrainConfig:
    """Pretraining hyper-parameters; defaults follow the released SpecRRMoco run (§5)."""

    method: str = "rrmoco"
    epochs: int = 800
    batch_size: int = 512
    lr: float = 0.15
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 50
    warmup_from: float = 0.02
    min_lr: float | None = None  # cosine floor; None: lr · 0.1³ (1.5e-4 at lr 0.15, §4)
    n_views: int = 6  # K relation views per curve
    piece_ratio: float = 0.2  # intra-sample piece length (fraction of L, or points if ≥ 1)
    intra_classes: int = 5
    tmp_bins: int = 5
    tmp_target: str = "auto"  # "order" | "pressure" | "auto" (pressure when known)
    contrast_coef: float = 0.01  # c; 0 and math.inf are allowed
    moco_momentum: float = 0.99
    temperature: float = 0.1
    queue_size: int | None = None  # None: 2·N_train
    bn_splits: int = 8
    symmetric: bool = True
    double_softmax: bool = False
    augmentation: str = "release"
    aug_p: float = 1.0
    n_points: int | None = None  # grid points (legacy 2θ preprocessing); None: the data's
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    init: str = "reference"
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision (bfloat16) on CUDA only
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.method = str(self.method)  # a StrEnum member (the CLI's) as its plain value
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {METHODS}")
        check_augmentation(self.augmentation)
        self.device = check_device(self.device)
        for name, value, allowed in (("tmp_target", self.tmp_target, TMP_TARGETS),
                                     ("init", self.init, INIT_SCHEMES)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose from {allowed}")
        if int(self.epochs) < 0 or int(self.batch_size) < 2:  # 0 epochs: initialised only
            raise ValueError(f"epochs must be ≥ 0 and batch_size ≥ 2 (got {self.epochs}, "
                             f"{self.batch_size})")
        if isinstance(self.preprocessing, dict):  # from a saved checkpoint
            self.preprocessing = Preprocessing.from_dict(self.preprocessing)

    @classmethod
    def paper(cls, **kw: Any) -> PretrainConfig:
        """The released setting: 800 epochs, batch 512, K=6, c=0.01, [magnitude, time] warp."""
        return cls(**kw)

    @classmethod
    def quick(cls, **kw: Any) -> PretrainConfig:
        """CPU preset: about a minute on 2 cores for ~1000 curves of 4000 points; the gentler
        ``xrd`` warp (short MoCo runs degrade under the release's, docs/method.md)."""
        base = dict(epochs=4, batch_size=128, n_views=3, warmup_epochs=1, bn_splits=4,
                    contrast_coef=0.1, init="pytorch", augmentation="xrd")
        return cls(**{**base, **kw})

    @property
    def uses_moco(self) -> bool:
        return self.method in {"rrmoco", "moco"}

    @property
    def uses_relations(self) -> bool:
        return self.method in {"rrmoco", "rr", "selftime"}

    @property
    def coef(self) -> float:
        return math.inf if self.method == "moco" else self.contrast_coef


class SSLModel(nn.Module):
    """Encoder + projector + relation heads + (optional) MoCo key network and queue."""

    def __init__(self, config: PretrainConfig, queue_size: int = 4096) -> None:
        super().__init__()
        self.encoder = ConvSCEncoder(init=config.init)  # type: ignore[arg-type]
        self.projector = ProjectionHead()
        self.inter_head = InterRelationHead()
        self.intra_head = IntraRelationHead(n_classes=config.intra_classes)
        self.tmp_head = ExternalVariableHead(n_bins=config.tmp_bins)
        self.moco = (
            MoCo(self.encoder, self.projector, queue_size, momentum=config.moco_momentum,
                 temperature=config.temperature, symmetric=config.symmetric,
                 bn_splits=config.bn_splits)
            if config.uses_moco else None
        )

    def project(self, x: Tensor) -> Tensor:
        """z = normalise(projector(encoder(x))): the input of every relation head."""
        return self.projector(self.encoder(x))

    def query_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters (the key network is updated by momentum only)."""
        return [p for p in self.parameters() if p.requires_grad]


@dataclass
class PretrainResult:
    """A trained model with what is needed to reuse it."""

    model: SSLModel
    config: PretrainConfig
    grid: np.ndarray
    history: list[dict[str, float]]
    corpus: dict[str, Any] | None = None  # the recipe of the corpus it saw, when recorded

    @property
    def encoder(self) -> ConvSCEncoder:
        return self.model.encoder

    def save(self, path: str | Path) -> Path:
        """Checkpoint: state dict, config, training grid and history."""
        return save_checkpoint(path, self.model, self.config, self.grid, self.history,
                               self.corpus)


def _step_losses(
    model: SSLModel, cfg: PretrainConfig, x: Tensor, tmp: Tensor, aug, g: torch.Generator
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and per-term metrics for one batch x (B, L)."""
    coef = cfg.coef
    parts: dict[str, Tensor] = {}
    total = x.new_zeros(())
    if cfg.uses_relations:
        train_rr = math.isfinite(coef)
        with torch.set_grad_enabled(train_rr and torch.is_grad_enabled()):
            views = aug(x.repeat(cfg.n_views, 1), g)  # (K·B, L), a fresh draw per view
            z = model.project(views)
            parts["inter_loss"], parts["inter_acc"] = inter_relation_loss(
                model.inter_head, list(z.chunk(cfg.n_views))
            )
            p0, p1, target = intra_pieces(views, cfg.piece_ratio, cfg.intra_classes, g)
            zp = model.project(torch.cat([p0, p1]))
            parts["intra_loss"], parts["intra_acc"] = intra_relation_loss(
                model.intra_head, *zp.chunk(2), target, cfg.double_softmax
            )
            rr = parts["inter_loss"] + parts["intra_loss"]
            if cfg.method != "selftime":
                parts["tmp_loss"], parts["tmp_acc"] = external_variable_loss(
                    model.tmp_head, z, tmp.repeat(cfg.n_views), cfg.double_softmax
                )
                rr = rr + parts["tmp_loss"]
        if train_rr:
            total = total + rr
    if model.moco is not None:
        with torch.set_grad_enabled(coef > 0 and torch.is_grad_enabled()):
            x1, x2 = aug(x, g), aug(x, g)
            parts["cont_loss"], parts["cont_acc"] = model.moco(
                model.project(x1), model.project(x2), x1, x2, g
            )
        if coef > 0:
            total = total + (parts["cont_loss"] if math.isinf(coef) else coef * parts["cont_loss"])
    parts["loss"] = total.detach()
    return total, parts


def pretrain(
    data: xr.Dataset | Sequence[xr.Dataset] | np.ndarray,
    config: PretrainConfig | None = None,
    on_epoch: EpochCallback | None = None,
    targets: np.ndarray | None = None,
    on_checkpoint: CheckpointCallback | None = None,
    state: str | Path | None = None,
) -> PretrainResult:
    """Pretrain an encoder on unlabelled curves.

    Args:
        data: spectra Dataset(s) (labels are ignored) or an array (N, L) of curves.
        config: hyper-parameters (default :meth:`PretrainConfig.paper`).
        on_epoch: called after every epoch with the epoch index and mean metrics.
        targets: external-variable targets (N,) overriding the order/pressure bins.
        on_checkpoint: called after every epoch with the epoch index and the model (e.g.
            to save it during a long run).
        state: a training-state file (model, optimiser, random state, history), replaced
            atomically after every epoch. If it exists, training goes on after its last
            epoch; it must come from the same configuration and number of curves.

    Seeded by ``config.seed``; torch's global random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        return _pretrain(data, config or PretrainConfig(), on_epoch, targets, on_checkpoint,
                         Path(state) if state is not None else None)


def _pretrain(
    data: xr.Dataset | Sequence[xr.Dataset] | np.ndarray,
    cfg: PretrainConfig,
    on_epoch: EpochCallback | None,
    targets: np.ndarray | None,
    on_checkpoint: CheckpointCallback | None = None,
    state: Path | None = None,
) -> PretrainResult:
    if isinstance(data, np.ndarray):
        x_np = minmax(np.asarray(data, dtype=np.float32))
        n = len(x_np)
        curves = Curves(x_np, np.arange(x_np.shape[1], dtype=float), np.zeros(n, int),
                        np.arange(n), None, None)
    else:
        curves = to_curves(list(data) if not isinstance(data, xr.Dataset) else data,
                           n_points=cfg.n_points, preprocessing=cfg.preprocessing)
    tmp_np = targets if targets is not None else external_targets(
        curves, cfg.tmp_bins, cfg.tmp_target)

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    n = len(curves.x)
    model = SSLModel(cfg, queue_size=cfg.queue_size or 2 * n).to(device)
    opt = torch.optim.SGD(model.query_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    aug = make_augmentation(cfg.augmentation, p=cfg.aug_p)
    x_all = torch.from_numpy(curves.x).to(device)
    tmp_all = torch.as_tensor(tmp_np, dtype=torch.long, device=device)
    # every curve every epoch, in ceil(n / batch_size) near-equal batches (no tiny last batch
    # for BatchNorm; the 2·N-key queue is refilled exactly once per epoch, as in the reference)
    steps = max(1, math.ceil(n / cfg.batch_size))
    amp = device.type == "cuda" and cfg.amp
    history: list[dict[str, float]] = []
    data = (data_fingerprint(x_all, tmp_all) if state is not None else "", n)
    if state is not None and state.exists():
        history = _restore_state(state, cfg, data, model, opt, g)
    for epoch in range(len(history), cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        batches = torch.randperm(n, generator=g, device=device).tensor_split(steps)
        sums: dict[str, float] = {}
        for step in range(steps):
            lr = learning_rate(epoch, step, steps, cfg.epochs, cfg.lr, cfg.min_lr,
                               cfg.warmup_epochs, cfg.warmup_from)
            for group in opt.param_groups:
                group["lr"] = lr
            idx = batches[step]
            if model.moco is not None:
                model.moco.momentum_update(model.encoder, model.projector)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, parts = _step_losses(model, cfg, x_all[idx], tmp_all[idx], aug, g)
            opt.zero_grad(set_to_none=True)
            if loss.requires_grad:
                loss.backward()
                opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["lr"] = sums.get("lr", 0.0) + lr
        metrics = {k: v / steps for k, v in sums.items()}
        metrics["epoch_s"] = time.perf_counter() - t0
        history.append(metrics)
        if state is not None:
            _save_state(state, cfg, data, model, opt, g, history)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if on_checkpoint is not None:
            on_checkpoint(epoch, model)
    model.eval()
    return PretrainResult(model, cfg, curves.grid, history)


STATE_FORMAT = "specflow-ssl-state/2"
STATE_FORMAT_1 = "specflow-ssl-state/1"  # checked by curve count only; still read


def _state_config(cfg: PretrainConfig) -> dict[str, Any]:
    """The configuration a state file must match (device and precision are checked apart);
    the preprocessing as it names itself, so fields added later at their defaults do not
    refuse a state saved before them."""
    state = {k: v for k, v in asdict(cfg).items() if k not in {"device", "amp"}}
    if isinstance(cfg.preprocessing, Preprocessing):
        state["preprocessing"] = cfg.preprocessing.to_dict()
    return state


def data_fingerprint(x: Tensor, targets: Tensor) -> str:
    """sha256 of the curves and external-variable targets a run trains on."""
    digest = hashlib.sha256(x.detach().cpu().numpy().tobytes())
    digest.update(targets.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _save_state(path: Path, cfg: PretrainConfig, data: tuple[str, int], model: SSLModel,
                opt: torch.optim.Optimizer, g: torch.Generator,
                history: list[dict[str, float]]) -> None:
    """Everything the next epoch needs, written to a temporary file and renamed into place;
    ``data``: the curves' fingerprint and count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save({"format": STATE_FORMAT, "config": _state_config(cfg), "data": data[0],
                "curves": data[1], "device": g.device.type,
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "generator": g.get_state(), "history": history}, partial)
    partial.replace(path)


def _restore_state(path: Path, cfg: PretrainConfig, data: tuple[str, int], model: SSLModel,
                   opt: torch.optim.Optimizer, g: torch.Generator) -> list[dict[str, float]]:
    """Load a state file into the model, optimiser and generator; return its history."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") not in (STATE_FORMAT, STATE_FORMAT_1):
        raise ValueError(f"{path}: not a specflow pretraining state; pass another state file")
    same_data = (saved["data"] == data[0] if saved["format"] == STATE_FORMAT
                 else saved["curves"] == data[1])  # format 1 kept only the count
    if saved["config"] != _state_config(cfg) or not same_data:
        raise ValueError(f"{path}: saved by a run with another configuration or other curves; "
                         "pass a new state file or delete this one to start over")
    device = saved.get("device", "cpu")
    if device != g.device.type:  # the random stream of one device goes on there only
        raise ValueError(f"{path}: saved on {device}; go on there (device={device!r}) or "
                         "start over with a new state file")
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    g.set_state(saved["generator"])
    return list(saved["history"])


def save_checkpoint(
    path: str | Path, model: SSLModel, config: PretrainConfig, grid: np.ndarray,
    history: list[dict[str, float]] | None = None, corpus: dict[str, Any] | None = None,
) -> Path:
    """Save state dict + config + training grid (+ history, + the corpus recipe) with
    torch.save."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "format": "specflow-ssl/1",
        "state_dict": model.state_dict(),
        "config": asdict(config),
        "grid": torch.as_tensor(np.asarray(grid, dtype=np.float64)),
        "history": history or [],
        **({"corpus": corpus} if corpus is not None else {}),
    }, path)
    return path


def slim_checkpoint(path: str | Path, out: str | Path,
                    corpus: dict[str, Any] | None = None) -> Path:
    """The checkpoint at ``path`` for using its encoder, not for pretraining further: the
    MoCo queue of negatives (nearly all of the file) is cut to one key; ``corpus``, the
    recipe of the corpus it saw, is kept with it. Features are unchanged."""
    result = load_checkpoint(path)
    moco = getattr(result.model, "moco", None)
    if moco is not None:
        moco.queue = moco.queue[:, :1].clone()
        moco.queue_ptr.zero_()
    return save_checkpoint(out, result.model, result.config, result.grid, result.history,
                           corpus if corpus is not None else result.corpus)


def load_checkpoint(path: str | Path, device: str = "cpu") -> PretrainResult:
    """Inverse of :func:`save_checkpoint` (safe ``weights_only`` loading)."""
    ckpt = torch.load(Path(path), map_location=device, weights_only=True)
    cfg = replace(PretrainConfig(), **ckpt["config"])
    queue = ckpt["state_dict"].get("moco.queue")
    model = SSLModel(cfg, queue_size=queue.shape[1] if queue is not None else 1)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    model.to(device).eval()
    return PretrainResult(model, cfg, ckpt["grid"].numpy(), ckpt["history"],
                          ckpt.get("corpus"))


@torch.inference_mode()
def encode(
    encoder: nn.Module, x: np.ndarray | Tensor, batch_size: int | None = None,
    device: str = "auto",
) -> np.ndarray:
    """Frozen features h (N, 128) of min–max normalised curves: eval mode, no augmentation.

    A :class:`ConvSCEncoder` runs as its BN-folded :class:`FusedConvSC` copy (same outputs);
    the default batch is :func:`inference_batch_size`.
    """
    dev = resolve_device(device)
    was_training = encoder.training
    encoder.eval().to(dev)
    net = FusedConvSC(encoder) if isinstance(encoder, ConvSCEncoder) else encoder
    bs = batch_size or inference_batch_size(dev)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if isinstance(x, np.ndarray) else x)
    out = [net(xt[i:i + bs].to(dev)).float().cpu() for i in range(0, len(xt), bs)]
    encoder.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 128), np.float32)
