"""Pretraining, probing, metrics and the evaluation protocol on small synthetic runs."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr

from specflow.data.preprocess import Preprocessing
from specflow.data.schema import make_spectra
from specflow.learn.data import external_targets, order_bins, to_curves
from specflow.learn.evaluate import evaluate, evaluate_datasets
from specflow.learn.losses import (
    cross_entropy,
    inter_relation_pairs,
    intra_pieces,
)
from specflow.learn.metrics import classification_report, cluster_scores, plot_embedding
from specflow.learn.moco import MoCo
from specflow.learn.pretrain import (
    PretrainConfig,
    _state_config,
    encode,
    load_checkpoint,
    pretrain,
)
from specflow.learn.probe import (
    ProbeConfig,
    active_labels,
    select_labels,
    split_train_val,
    suggest_labels,
    train_probe,
    uncertain_curves,
)
from specflow.learn.schedule import learning_rate
from specflow.models.convsc import ConvSCEncoder
from specflow.models.heads import ProjectionHead


def synthetic_run(
    n: int = 120, length: int = 512, seed: int = 0, lo: float = 5.0, hi: float = 25.0,
    onset: float = 0.4, end: float = 0.6,
) -> xr.Dataset:
    """Gaussian peaks that shift with pressure; a new peak set grows in during the transition."""
    rng = np.random.default_rng(seed)
    tt = np.linspace(lo, hi, length)
    t = np.linspace(0, 1, n)
    frac = np.clip((t - onset) / (end - onset), 0, 1)
    pos_a = np.array([8.0, 12.0, 17.0, 21.0])
    pos_b = np.array([10.0, 14.5, 19.0])
    shift = 0.6 * t[:, None]
    peaks_a = np.exp(-((tt[None, None] - (pos_a + shift)[..., None]) ** 2) / 0.02).sum(1)
    peaks_b = np.exp(-((tt[None, None] - (pos_b + shift[:, :1])[..., None]) ** 2) / 0.02).sum(1)
    y = (1 - frac)[:, None] * peaks_a + frac[:, None] * peaks_b + 0.2
    y = y * rng.uniform(50, 150, (n, 1)) + rng.normal(0, 3.0, y.shape)
    label = np.where(frac <= 0.05, 0, np.where(frac >= 0.95, 2, 1))
    return make_spectra(y.astype(np.float32), tt, pressure=2 + 30 * t, label=label,
                        attrs={"energy": 25.6, "run_uid": f"synthetic-{seed}-{n}-{length}"})


SMALL_Q = Preprocessing(grid=(1.3, 5.5, 512))
TINY = dict(epochs=6, batch_size=64, n_views=3, warmup_epochs=1, lr=0.15, bn_splits=4,
            contrast_coef=0.1, queue_size=256, init="pytorch", preprocessing=SMALL_Q)


@pytest.fixture(scope="module")
def runs() -> list[xr.Dataset]:
    return [synthetic_run(128, seed=0), synthetic_run(128, seed=1, onset=0.3, end=0.55)]


@pytest.fixture(scope="module")
def trained(runs):
    history = []
    result = pretrain(runs, PretrainConfig(**TINY), on_epoch=lambda e, m: history.append(m))
    return result, history


# --- pieces -------------------------------------------------------------------------------


def test_inter_pairs_never_pair_a_curve_with_itself():
    b, k = 4, 4
    views = [torch.arange(b, dtype=torch.float32)[:, None] + 10 * v for v in range(k)]
    za, zb, target = inter_relation_pairs(views)
    assert len(target) == k * (k - 1) * b and target.mean() == 0.5
    same_curve = (za % 10) == (zb % 10)
    assert torch.equal(same_curve.squeeze(1), target.bool())


def test_intra_pieces_reach_every_class():
    x = torch.rand(4000, 400)
    p0, p1, target = intra_pieces(x, 0.2, 5, torch.Generator().manual_seed(0))
    assert p0.shape == (4000, 80) and set(target.tolist()) == {0, 1, 2, 3, 4}


def test_double_softmax_floor():
    logits = torch.tensor([[100.0, 0, 0, 0, 0]])
    assert cross_entropy(logits, torch.tensor([0])) < 1e-6
    floor = math.log(1 + 4 * math.exp(-1))
    assert cross_entropy(logits, torch.tensor([0]), double_softmax=True) == pytest.approx(floor)


def test_moco_ring_buffer_and_momentum():
    torch.manual_seed(0)
    enc, proj = ConvSCEncoder(), ProjectionHead()
    moco = MoCo(enc, proj, queue_size=10)
    keys = torch.nn.functional.normalize(torch.randn(7, 128), dim=1)
    moco.enqueue(keys)
    moco.enqueue(keys)  # wraps around: 14 keys into 10 slots
    assert moco.queue_ptr.item() == 4
    assert torch.allclose(moco.queue[:, :4].T, keys[3:7])
    with torch.no_grad():
        enc.embed[0].weight.add_(1.0)
    before = moco.key_encoder.embed[0].weight.clone()
    moco.momentum_update(enc, proj)
    expected = 0.99 * before + 0.01 * enc.embed[0].weight
    assert torch.allclose(moco.key_encoder.embed[0].weight, expected)


def test_schedule_warmup_fixed_and_cosine():
    kw = dict(steps_per_epoch=4, epochs=800)
    assert learning_rate(0, 0, **kw) == pytest.approx(0.02)
    assert learning_rate(50, 0, **kw) == pytest.approx(0.14856, abs=1e-5)
    assert learning_rate(49, 3, **kw) < learning_rate(50, 0, **kw)
    assert learning_rate(799, 0, **kw) == pytest.approx(1.5058e-4, rel=1e-3)
    assert learning_rate(800, 0, lr=0.3, **kw) == pytest.approx(3e-4)  # floor follows lr


def test_external_targets(runs):
    curves = to_curves(runs)
    bins = order_bins(curves.run, curves.order, 5)
    assert np.bincount(bins[curves.run == 0]).tolist() == [26, 26, 25, 26, 25]
    assert np.all(np.diff(bins[curves.run == 0]) >= 0)
    assert set(external_targets(curves, 5, "pressure")) == {0, 1, 2, 3, 4}


# --- pretraining ----------------------------------------------------------------------------


@pytest.mark.slow
def test_pretraining_lowers_every_loss(trained):
    _, history = trained
    for key in ("inter_loss", "intra_loss", "tmp_loss", "loss"):
        first, last = history[0][key], min(h[key] for h in history[-2:])
        assert last < first - 0.02, (key, [h[key] for h in history])
    assert history[-1]["inter_acc"] > 0.6
    cont = [h["cont_loss"] for h in history]
    assert min(cont[-2:]) < max(cont[:3])  # contrastive loss falls once the queue is real


def test_moco_alone_learns():
    cfg = PretrainConfig(**{**TINY, "method": "moco", "epochs": 8, "queue_size": 128})
    hist = pretrain([synthetic_run(128, 256)], cfg).history
    assert hist[-1]["cont_loss"] < max(h["cont_loss"] for h in hist[:3]) - 0.3
    assert "inter_loss" not in hist[-1]


def test_contrast_coefficient_corner_cases(runs):
    base = {**TINY, "epochs": 1, "queue_size": 300}
    inf = pretrain(runs, PretrainConfig(**{**base, "contrast_coef": math.inf}))
    # c = inf: relation heads are evaluated (logged) but never trained.
    fresh = pretrain(runs, PretrainConfig(**{**base, "epochs": 0}))
    assert torch.equal(inf.model.inter_head.net[0].weight, fresh.model.inter_head.net[0].weight)
    assert "inter_acc" in inf.history[0]
    # c = 0: MoCo runs (queue moves) but sends no gradient: same encoder as SpecRR.
    zero = pretrain(runs, PretrainConfig(**{**base, "contrast_coef": 0.0}))
    assert zero.model.moco.queue_ptr.item() > 0
    assert not torch.equal(zero.model.moco.queue, fresh.model.moco.queue)


def test_epoch_uses_every_curve(runs):
    # 256 curves at batch 100: three near-equal batches, not two full ones and 56 left out;
    # the default 2·N queue then takes exactly one epoch of (symmetric) keys
    cfg = PretrainConfig(**{**TINY, "epochs": 1, "batch_size": 100, "queue_size": None})
    model = pretrain(runs, cfg).model
    assert model.moco.queue.shape[1] == 2 * 256
    assert model.moco.queue_ptr.item() == 0


def test_selftime_has_no_external_variable_term(runs):
    hist = pretrain(runs, PretrainConfig(**{**TINY, "epochs": 1, "method": "selftime"})).history
    assert "tmp_loss" not in hist[0] and "cont_loss" not in hist[0]
    assert hist[0]["loss"] == pytest.approx(hist[0]["inter_loss"] + hist[0]["intra_loss"])


def test_deterministic_on_cpu():
    cfg = PretrainConfig(**{**TINY, "epochs": 1})
    data = [synthetic_run(128, 256)]
    a, b = pretrain(data, cfg), pretrain(data, cfg)
    assert a.history[-1]["loss"] == b.history[-1]["loss"]
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(),
                           strict=True):
        assert torch.equal(va, vb), k


def test_a_state_names_its_preprocessing_as_the_preprocessing_does():
    """States saved before a preprocessing field existed (at its default) still match."""
    state = _state_config(PretrainConfig())
    assert state["preprocessing"] == Preprocessing().to_dict()
    assert "intensity" not in state["preprocessing"]


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    cfg = PretrainConfig(**{**TINY, "epochs": 3})
    data = [synthetic_run(128, 256)]
    whole = pretrain(data, cfg)
    state = tmp_path / "state.pt"

    def killed_after_first_epoch(epoch: int, metrics: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(data, cfg, state=state, on_epoch=killed_after_first_epoch)
    assert len(torch.load(state, weights_only=True)["history"]) == 1
    resumed = pretrain(data, cfg, state=state)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    for (k, va), vb in zip(whole.model.state_dict().items(),
                           resumed.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    with pytest.raises(ValueError, match="another configuration or other curves"):
        pretrain(data, replace(cfg, lr=0.1), state=state)
    other = synthetic_run(128, 256)
    other["intensity"] = other["intensity"][::-1]  # as many curves, other curves
    with pytest.raises(ValueError, match="another configuration or other curves"):
        pretrain([other], cfg, state=state)


def test_checkpoint_round_trip(trained, runs, tmp_path):
    result, _ = trained
    path = result.save(tmp_path / "ssl.pt")
    loaded = load_checkpoint(path)
    assert loaded.config == result.config
    assert np.array_equal(loaded.grid, result.grid)
    x = to_curves(runs, grid=loaded.grid, preprocessing=loaded.config.preprocessing).x
    assert np.array_equal(encode(loaded.encoder, x), encode(result.encoder, x))


def test_a_slim_checkpoint_keeps_the_features_and_the_recipe_not_the_queue(trained, runs,
                                                                          tmp_path):
    from specflow.learn.pretrain import slim_checkpoint

    result, _ = trained
    full = result.save(tmp_path / "ssl.pt")
    recipe = {"transitions": ["Fe", "FeO"], "runs": 2}
    slim = load_checkpoint(slim_checkpoint(full, tmp_path / "slim.pt", corpus=recipe))
    assert slim.corpus == recipe and slim.history == result.history
    assert slim.model.moco.queue.shape[1] == 1 < result.model.moco.queue.shape[1]
    x = to_curves(runs, grid=slim.grid, preprocessing=slim.config.preprocessing).x
    assert np.array_equal(encode(slim.encoder, x), encode(result.encoder, x))


# --- probing and metrics --------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_probe_beats_chance_on_held_out(trained, runs, solver):
    result, _ = trained
    curves = to_curves(runs, grid=result.grid, preprocessing=result.config.preprocessing)
    h = encode(result.encoder, curves.x)
    train = select_labels(curves.label, 0.1, order=np.arange(len(h)))
    probe = train_probe(h[train], curves.label[train], ProbeConfig(solver=solver, seed=0))
    test = np.setdiff1d(np.arange(len(h)), train)
    acc = np.mean(probe.predict(h[test]) == curves.label[test])
    assert acc > 0.8  # chance is ~0.45 (majority class)
    if solver == "sgd":
        assert len(probe.history) < ProbeConfig().max_epochs  # early stopping on val kicked in


def test_logistic_probe_two_classes_and_one_class():
    rng = np.random.default_rng(0)
    h = np.concatenate([rng.normal(0, 1, (20, 3)), rng.normal(4, 1, (20, 3))])
    y = np.repeat([0, 2], 20)
    probe = train_probe(h, y)
    assert np.mean(probe.predict(h) == y) > 0.95 and set(probe.classes) == {0, 2}
    assert np.all(train_probe(h, np.full(40, 1)).predict(h) == 1)
    with pytest.raises(ValueError, match="solver"):
        train_probe(h, y, ProbeConfig(solver="adam"))


def test_uncertainty_sampling_labels_the_boundary():
    # one feature that ramps through a class boundary at index 70
    x = np.linspace(0, 1, 100)[:, None]
    y = (np.arange(100) >= 70).astype(int)
    y[5] = -1  # unlabelled curves are never asked for
    probe = train_probe(x[[0, 99]], y[[0, 99]])
    first = uncertain_curves(probe, x, exclude=[0, 99], n=3)
    assert all(40 <= i <= 60 for i in first)  # the probe's own boundary: between its 2 labels
    picked = active_labels(x, y, initial=np.array([0, 99]), budget=8)
    assert len(picked) == 8 and 5 not in picked
    assert np.abs(picked - 69.5).min() < 3  # the loop walked to the true boundary
    pred = train_probe(x[picked], y[picked]).predict(x)
    assert np.mean(pred[y >= 0] == y[y >= 0]) > 0.97


def test_select_labels_spread_and_stratified():
    labels = np.array([0] * 60 + [1] * 10 + [2] * 30 + [-1] * 5)
    idx = select_labels(labels, 0.05)
    assert set(labels[idx]) == {0, 1, 2} and -1 not in labels[idx]
    zeros = idx[labels[idx] == 0]
    assert len(zeros) >= 2 and np.ptp(zeros) > 20  # spread through the class
    assert np.array_equal(select_labels(np.zeros(50, int), 0.03), select_labels(
        np.zeros(50, int), 0.03))
    assert len(select_labels(np.zeros(50, int), 0.03)) == 2


def test_split_train_val_keeps_one_per_class():
    tr, va = split_train_val(np.array([0, 0, 0, 0, 0, 1, 2, 2]), 0.4)
    assert set(np.array([0, 0, 0, 0, 0, 1, 2, 2])[tr]) == {0, 1, 2}
    assert len(np.intersect1d(tr, va)) == 0


def test_suggest_labels_central_and_boundary():
    rng = np.random.default_rng(0)
    h = np.concatenate([rng.normal(c, 0.3, (40, 4)) for c in (0, 3, 6)])
    picks = suggest_labels(h, n_clusters=3, n_boundary=2)
    idx = [i for i, _ in picks]
    assert len(idx) == len(set(idx)) == 5
    assert {i // 40 for i, r in picks if r.startswith("central")} == {0, 1, 2}


def test_metrics_and_clustering(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.2, (30, 5)) for c in (0, 2, 4)])
    y = np.repeat([0, 1, 2], 30)
    rep = classification_report(y, y)
    assert rep["precision"] == rep["recall"] == 1.0 and rep["confusion"][1][1] == 30
    scores = cluster_scores(x, y)
    assert scores["ari"] > 0.9 and scores["silhouette"] > 0.5
    png = plot_embedding(x, y, tmp_path / "emb.png", method="tsne")
    assert png.stat().st_size > 1000


# --- protocol -------------------------------------------------------------------------------


def test_evaluate_files_with_other_grids_and_one_class(tmp_path):
    a = synthetic_run(100, 400, seed=3)
    b = synthetic_run(60, 300, seed=4, lo=4.0, hi=26.0)
    b["label"][:] = 2  # a file whose labels are all one class
    paths = [tmp_path / "a.nc", tmp_path / "b.nc"]
    for ds, p in zip((a, b), paths, strict=True):
        ds.to_netcdf(p, engine="h5netcdf")
    out = evaluate(paths, method="selftime", label_fraction=0.05, epochs=1, json_out=tmp_path
                   / "r.json", device="cpu")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert set(saved["files"]) == {"a", "b"} and {"precision", "recall"} <= set(saved["overall"])
    assert out["files"]["a"]["n"] + out["files"]["b"]["n"] + out["n_labels"] == 160


def test_raw_baseline_and_cli(tmp_path, cli):
    res = evaluate_datasets({"r": synthetic_run(90, 256)}, method="raw", label_fraction=0.1)
    assert res["overall"]["recall"] > 0.6
    sug = evaluate_datasets({"r": synthetic_run(90, 256)}, method="raw", label_fraction=0.1,
                            label_strategy="suggest")
    assert sug["n_labels"] == res["n_labels"] and sug["label_strategy"] == "suggest"
    assert sug["overall"]["n"] == 90 - sug["n_labels"] and sug["overall"]["recall"] > 0.6
    with pytest.raises(ValueError, match="label strategy"):
        evaluate_datasets({"r": synthetic_run(90, 256)}, method="raw", label_strategy="best")
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"run{i}.nc")
        synthetic_run(64, 256, seed=i).to_netcdf(paths[-1], engine="h5netcdf")
    out = cli(["evaluate", "--data", paths[0], paths[1], "--method", "raw",
               "--label-fraction", "0.1", "--label-strategy", "suggest",
               "--json", tmp_path / "o.json"])
    assert "overall" in out
    saved = json.loads((tmp_path / "o.json").read_text())
    assert set(saved["files"]) == {"run0", "run1"} and saved["label_strategy"] == "suggest"


def test_simulator_end_to_end():
    from specflow.simulator.simulate import simulate_run

    runs = {"fe": simulate_run("Fe", n_curves=80, seed=0)}
    cfg = PretrainConfig(**{**TINY, "epochs": 2, "method": "rr"})
    res = evaluate_datasets(runs, method="rr", label_fraction=0.05, config=cfg,
                            preprocessing=Preprocessing(grid=(1.3, 5.5, 1024)))
    assert res["n_labels"] == 4 and res["grid"]["points"] == 1024
    assert res["overall"]["n"] == 76 and res["overall"]["recall"] > 0.5  # majority: 0.45


# --- cross-run protocol ------------------------------------------------------------------------


def test_cross_run_test_runs_never_reach_pretraining_or_the_probe(monkeypatch):
    """The --test runs are scored only: pretraining and the probe see the --data runs alone."""
    import specflow.learn.fitting as ev

    data = {"a": synthetic_run(96, seed=0), "b": synthetic_run(96, seed=1, onset=0.3)}
    test = {"t": synthetic_run(80, seed=7, onset=0.5, end=0.7)}
    test_uid = test["t"].attrs["run_uid"]
    seen: dict[str, list] = {"pretrain": [], "probe": []}
    real_pretrain, real_probe = ev.pretrain, ev.fit_probe

    def spy_pretrain(datasets, config, **kw):
        seen["pretrain"] += [ds.attrs["run_uid"] for ds in datasets]
        return real_pretrain(datasets, config, **kw)

    def spy_probe(h, y, x, featurize, config=None, groups=None):
        seen["probe"].append(len(h))
        assert len(x) == len(h) == len(y)  # the labelled training curves, nothing else
        return real_probe(h, y, x, featurize, config, groups)

    monkeypatch.setattr(ev, "pretrain", spy_pretrain)
    monkeypatch.setattr(ev, "fit_probe", spy_probe)
    cfg = PretrainConfig(**{**TINY, "epochs": 1, "method": "rr"})
    res = evaluate_datasets(data, test, method="rr", label_fraction=0.05, config=cfg,
                            preprocessing=SMALL_Q, baselines=("pressure", "raw", "untrained"))
    assert test_uid not in seen["pretrain"] and len(seen["pretrain"]) == 2
    assert seen["probe"] and max(seen["probe"]) <= res["n_labels"]
    assert res["protocol"] == "cross-run" and res["test"] == ["t"]
    assert set(res["files"]) == {"t"} and res["overall"]["n"] == 80
    for block in (res["overall"], *res["baselines"].values()):
        assert {"precision", "recall", "macro_f1", "during_recall", "onset_error_gpa"} <= set(block)
    assert set(res["baselines"]) == {"pressure", "raw", "untrained"}
    assert res["within_run"]["overall"]["n"] == 192 - res["n_labels"]
    with pytest.raises(ValueError, match="both in data and test"):
        evaluate_datasets({"t": test["t"]}, test, method="raw")


def test_cross_run_cli_contract_with_other_energy_and_grid(tmp_path):
    from typer.testing import CliRunner

    from specflow.cli import app

    paths = {}
    for name, ds in {"a": synthetic_run(80, 400, seed=0), "b": synthetic_run(80, 400, seed=1),
                     "t": synthetic_run(70, 300, seed=5, lo=4.0, hi=27.0)}.items():
        if name == "t":  # another beamline: other energy, other grid
            ds = ds.assign_coords(two_theta=ds["two_theta"] * 25.6 / 30.0)
            ds.attrs["energy"] = 30.0
        paths[name] = tmp_path / f"{name}.nc"
        ds.to_netcdf(paths[name], engine="h5netcdf")
    out = CliRunner().invoke(app, [
        "evaluate", "--data", str(paths["a"]), str(paths["b"]), "--test", str(paths["t"]),
        "--method", "raw", "--label-fraction", "0.05", "--seed", "0", "--baselines",
        "--json", str(tmp_path / "o.json")], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    saved = json.loads((tmp_path / "o.json").read_text())
    keys = {"precision", "recall", "macro_f1", "during_recall", "onset_error_gpa"}
    assert keys <= set(saved["overall"]) and set(saved["files"]) == {"t"}
    assert {"pressure", "neighbour", "raw", "untrained"} <= set(saved["baselines"])
    assert all(keys <= set(b) for b in saved["baselines"].values())
    assert saved["overall"]["recall"] > 0.6  # Q grid: peaks line up across energies


@pytest.mark.slow
def test_evaluate_json_contract_v3_paired_and_ceiling(tmp_path, cli):
    """The yardstick's contract: ``overall`` keeps its keys and adds end error, boundary error
    and accuracy outside the boundaries; ``--baselines`` adds ``paired`` (method − control
    with an interval); simulated test runs add the ideal observer's ``ceiling``."""
    import json

    from specflow.data.io import write_netcdf
    from specflow.simulator.simulate import simulate_family

    runs = simulate_family("Fe", 3, n_curves=(70, 90), seed=41)
    paths = [write_netcdf(r, tmp_path / f"{i}.nc") for i, r in enumerate(runs)]
    cli(["evaluate", "--data", paths[0], paths[1], "--test", paths[2], "--baselines",
         "--label-fraction", "0.05", "--json", tmp_path / "v3.json"])
    res = json.loads((tmp_path / "v3.json").read_text())
    assert res["method_key"] == "cnn" and res["corpus"]["transitions"] == ["Fe"]
    keys = {"precision", "recall", "macro_f1", "during_recall", "onset_error_gpa",
            "end_error_gpa", "boundary_error_curves", "accuracy_outside_boundaries"}
    assert keys <= set(res["overall"])
    assert set(res["paired"]) >= {"pressure", "neighbour", "raw", "untrained"}
    diff = res["paired"]["pressure"]["accuracy"]
    assert diff["n"] == 1 and diff["mean"] == pytest.approx(
        res["files"]["2"]["accuracy"] - res["baselines"]["pressure"]["files"]["2"]["accuracy"])
    assert res["ceiling"]["accuracy"] >= 0.9 and keys <= set(res["ceiling"])
