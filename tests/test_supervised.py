"""The eight end-to-end supervised models: shapes, bin logic, context, fit, bundle, registry."""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace

import mlflow
import numpy as np
import pytest
import torch
from conftest import record_ramp

from specflow.data.preprocess import Preprocessing
from specflow.learn.corpus_model import training_fingerprint
from specflow.learn.data import to_curves, wavelength_of
from specflow.learn.evaluate import evaluate_datasets
from specflow.learn.metrics import ambiguity_width
from specflow.learn.names import SUPERVISED_METHODS, TRANSDUCTIVE_METHODS
from specflow.learn.predictor import PhasePredictor, build_network_bundle
from specflow.learn.pretrain import load_checkpoint
from specflow.learn.supervised import (
    SupervisedConfig,
    network_outputs,
    run_sequences,
    train_network,
)
from specflow.models.convsc import count_parameters
from specflow.models.supervised import ARCHITECTURES, BinnedFCNN, build_network, window_index
from specflow.registry.encoder import SHIPPED_ENCODER
from specflow.simulator.simulate import simulate_run

LENGTH = 256


@pytest.fixture(scope="module")
def curves():
    runs = [simulate_run("Fe", 60, seed=21), simulate_run("Fe", 50, seed=22)]
    return runs, to_curves(runs, preprocessing=Preprocessing(grid=(1.3, 5.5, LENGTH)))


def test_every_method_has_an_architecture():
    assert set(SUPERVISED_METHODS) == set(ARCHITECTURES)
    assert {ARCHITECTURES[m].context for m in TRANSDUCTIVE_METHODS} == {"run"}
    assert ARCHITECTURES["lstm"].context == "past"


@pytest.mark.parametrize("arch", SUPERVISED_METHODS)
def test_shapes(arch):
    torch.manual_seed(0)
    net = build_network(arch, LENGTH).eval()
    if net.context == "curve":
        logits, h = net(torch.rand(5, LENGTH))
        assert logits.shape == (5, 3) and h.shape[0] == 5 and h.ndim == 2
    else:  # sequences: a batch (S, W, L), or one run (N, L)
        logits, h = net(torch.rand(2, 7, LENGTH))
        assert logits.shape == (2, 7, 3) and h.shape[:2] == (2, 7)
        logits, h = net(torch.rand(9, LENGTH))
        assert logits.shape == (9, 3) and h.shape[0] == 9
    assert torch.isfinite(logits).all() and torch.isfinite(h).all()


def test_window_index_keeps_each_curve_inside_a_trained_width():
    idx, pos = window_index(6, 3, causal=True)  # the window ending at each curve
    assert idx.tolist() == [[0, 1, 2], [0, 1, 2], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert pos.tolist() == [0, 1, 2, 2, 2, 2]
    idx, pos = window_index(6, 3, causal=False)  # centred, shifted inside at the ends
    assert idx.tolist() == [[0, 1, 2], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [3, 4, 5]]
    assert pos.tolist() == [0, 1, 1, 1, 1, 2]
    idx, pos = window_index(2, 5, causal=False)  # a run shorter than the window
    assert idx.tolist() == [[0, 1], [0, 1]] and pos.tolist() == [0, 1]


def test_a_run_is_read_in_windows_of_the_trained_width():
    torch.manual_seed(0)
    net = build_network("transformer", LENGTH, window=4).eval()
    x = torch.rand(10, LENGTH)
    with torch.no_grad():
        whole, _ = net(x)
        alone, _ = net(x[3:7][None])  # the window centred on curve 5: curves 3..6
    assert torch.allclose(whole[5], alone[0, 2], atol=1e-5)


def test_context_sequence_models_read_the_run_and_lstm_only_the_past():
    torch.manual_seed(0)
    x = torch.rand(12, LENGTH)
    changed = x.clone()
    changed[8:] = torch.rand(4, LENGTH)  # change the last four curves only
    for arch in ("cnn", "lstm", "transformer", "convsct"):
        net = build_network(arch, LENGTH).eval()
        if hasattr(net, "window"):
            net.window = 12  # the whole sequence in one window
        with torch.no_grad():
            a, b = net(x)[0][:8], net(changed)[0][:8]
        same = torch.allclose(a, b, atol=1e-6)
        # per-curve and causal models ignore later curves; transductive ones do not
        assert same == (arch in ("cnn", "lstm")), arch


def test_binned_samples_take_one_offset_in_every_bin():
    net = BinnedFCNN(10, bins=3)  # N2 = 3; the 10th point is not used
    x = torch.arange(10, dtype=torch.float32)[None]
    s = net.samples(x)
    assert s.shape == (1, 3, 3, 2)
    # offset j of bin b is point b·N2 + j
    assert s[0, :, :, 1].tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert torch.allclose(s[0, 0, :, 0], torch.linspace(0, 1, 10)[[0, 3, 6]])
    for bins in (1, 4, 16):
        assert count_parameters(BinnedFCNN(LENGTH, bins=bins)) == 1062 * bins + 3
    with pytest.raises(ValueError, match="bins"):
        BinnedFCNN(LENGTH, bins=LENGTH)


def test_binned_curve_probability_is_the_mean_of_its_points():
    torch.manual_seed(0)
    net = BinnedFCNN(LENGTH, bins=4).eval()
    x = torch.rand(3, LENGTH)
    with torch.no_grad():
        logits, _ = net(x)
        points, _ = net.point_outputs(x)
    assert torch.allclose(logits.exp(), torch.softmax(points, -1).mean(1), atol=1e-6)


@pytest.mark.parametrize("arch", SUPERVISED_METHODS)
def test_one_epoch_fit_learns_from_labels_only(curves, arch):
    _, c = curves
    labelled = np.flatnonzero(np.arange(len(c.x)) % 5 == 0)
    cfg = SupervisedConfig(arch=arch, steps=3, batch_size=8, window=8, sequences=2,
                           device="cpu", arch_kwargs={"bins": 4} if arch == "binned" else {})
    trained = train_network(c, labelled, cfg)
    assert len(trained.history) == 3 and np.isfinite(trained.history).all()
    assert trained.n_labels == len(labelled)
    probs, h = network_outputs(trained.network, c.x, run_sequences(c), device="cpu")
    assert probs.shape == (len(c.x), 3) and h.shape[0] == len(c.x)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)


def test_unlabelled_curves_never_reach_the_loss(curves):
    """Scrambling the labels of the curves not picked changes nothing in training."""
    _, c = curves
    labelled = np.flatnonzero(np.arange(len(c.x)) % 6 == 0)
    scrambled = copy.copy(c)
    scrambled.label = c.label.copy()
    rest = np.setdiff1d(np.arange(len(c.x)), labelled)
    scrambled.label[rest] = (c.label[rest] + 1) % 3
    for arch in ("cnn", "lstm"):  # per curve, and windows whose other curves are context
        cfg = SupervisedConfig(arch=arch, steps=4, batch_size=8, window=8, device="cpu")
        a, b = train_network(c, labelled, cfg), train_network(scrambled, labelled, cfg)
        assert a.history == b.history, arch


def test_training_leaves_the_global_random_state_alone(curves):
    _, c = curves
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_network(c, np.arange(0, len(c.x), 5), SupervisedConfig(steps=2, device="cpu"))
    assert torch.equal(torch.rand(3), expected)


def test_training_reaches_the_labels(curves):
    """Enough steps on a labelled Fe run: the CNN beats chance by far on unlabelled curves."""
    _, c = curves
    labelled = np.flatnonzero(np.arange(len(c.x)) % 4 == 0)
    trained = train_network(c, labelled, SupervisedConfig(arch="cnn", steps=120, device="cpu"))
    probs, _ = network_outputs(trained.network, c.x, device="cpu")
    rest = np.setdiff1d(np.arange(len(c.x)), labelled)
    assert (probs[rest].argmax(1) == c.label[rest]).mean() > 0.8


@pytest.mark.parametrize("arch", ["fnn", "lstm", "transformer", "convsct"])
def test_bundle_serves_what_was_trained(curves, tmp_path, arch):
    runs, c = curves
    trained = train_network(c, np.arange(0, len(c.x), 3),
                            SupervisedConfig(arch=arch, steps=5, window=8, device="cpu"))
    probs, h = network_outputs(trained.network, c.x, run_sequences(c), device="cpu")
    bundle = build_network_bundle(trained, c.grid, h, c.preprocessing, None, groups=c.run)
    torch.save(bundle, tmp_path / "m.pt")
    predictor = PhasePredictor.load(tmp_path / "m.pt")  # weights_only
    assert predictor.context_window == (0 if arch == "fnn" else 8)
    ds = runs[1]
    out = predictor.predict(ds["intensity"].values, ds["two_theta"].values, wavelength_of(ds))
    assert np.allclose(out["probabilities"], probs[run_sequences(c)[1]], atol=1e-4)
    assert out["ood_score"].shape == (ds.sizes["curve"],)


def test_live_monitor_gives_a_sequence_model_the_curves_before(curves):
    from specflow.annotate.live import LivePhaseMonitor
    from specflow.ingest.callback import SpectraCollector

    runs, c = curves
    trained = train_network(c, np.arange(0, len(c.x), 3),
                            SupervisedConfig(arch="lstm", steps=5, window=6, device="cpu"))
    _, h = network_outputs(trained.network, c.x, run_sequences(c), device="cpu")
    predictor = PhasePredictor(build_network_bundle(trained, c.grid, h, c.preprocessing,
                                                    None, groups=c.run))
    ds = runs[0]
    offline = predictor.predict(ds["intensity"].values, ds["two_theta"].values,
                                wavelength_of(ds))["probabilities"]
    monitor = LivePhaseMonitor(predictor)
    collector = SpectraCollector()
    collector.on_update(monitor._on_update)
    for name, doc in _documents(ds):
        collector(name, doc)
    (uid,) = monitor.predictions
    live = np.array([p.probability for p in monitor.predictions[uid]])
    # one event at a time, the LSTM reads each curve after its 5 predecessors: as offline
    assert np.allclose(live, offline[np.arange(len(live)), offline.argmax(1)], atol=1e-4)


def _documents(ds):
    """Bluesky documents of one run, one event per curve."""
    from event_model import compose_run

    bundle = compose_run()
    yield "start", bundle.start_doc
    config = {"xrd": {"data": {"xrd_two_theta": ds["two_theta"].values.tolist(),
                               "xrd_energy": float(ds.attrs["energy"])},
                      "timestamps": {"xrd_two_theta": 0.0, "xrd_energy": 0.0},
                      "data_keys": {}}}
    desc = bundle.compose_descriptor(name="primary", data_keys={
        "xrd": {"source": "sim", "dtype": "array", "shape": [ds.sizes["two_theta"]],
                "object_name": "xrd"},
        "pressure": {"source": "sim", "dtype": "number", "shape": []}},
        configuration=config, validate=False)
    yield "descriptor", desc.descriptor_doc
    for i in range(ds.sizes["curve"]):
        yield "event", desc.compose_event(
            data={"xrd": ds["intensity"].values[i], "pressure": float(ds["pressure"][i])},
            timestamps={"xrd": float(i), "pressure": float(i)}, seq_num=i + 1)
    yield "stop", bundle.compose_stop()


def test_ambiguity_width_uses_no_labels():
    assert ambiguity_width(np.array([0, 0, 0, 2, 2])) == 0.0
    assert ambiguity_width(np.array([0, 0, 1, 0, 2, 2, 2, 2, 1, 2])) == 0.7
    assert ambiguity_width(np.array([0, 0, 1, 1, 2])) == pytest.approx(0.4)
    assert ambiguity_width(np.array([1, 1, 1])) == 0.0
    assert ambiguity_width(np.array([2, 2, 0, 0])) == 0.0  # decompression


def test_evaluate_supervised_in_both_protocols():
    train = {f"r{i}": simulate_run("Fe", 60, seed=30 + i) for i in range(2)}
    test = {"t0": simulate_run("Fe", 50, seed=40)}
    res = evaluate_datasets(train, test, method="cnn", label_fraction=0.2, seed=0,
                            device="cpu", supervised=SupervisedConfig(steps=60),
                            baselines=("pressure",))
    assert res["method"] == "CNN" and res["protocol"] == "cross-run"
    assert res["train_seconds"] > 0 and res["pretrain_seconds"] == 0
    assert res["overall"]["recall"] > 0.7
    # the decoded boundary is about as wide as the true one (no ground truth in the score)
    truth = ambiguity_width(test["t0"]["label"].values)
    assert abs(res["per_curve"]["ambiguity_width"] - truth) < 0.15, (res["per_curve"], truth)
    assert res["within_run"]["overall"]["n"] > 0
    assert "pressure" in res["baselines"]


def test_classifier_fits_saves_and_loads_a_supervised_model(tmp_path):
    from specflow import PhaseClassifier

    ds = simulate_run("Fe", 80, seed=5)
    lab = ds["label"].where(np.arange(80) % 4 == 0)
    clf = PhaseClassifier(method="binned", supervised=SupervisedConfig(
        steps=40, arch_kwargs={"bins": 8}), device="cpu").fit(ds, labels=lab)
    pred = clf.predict(ds)
    assert pred["probabilities"].shape == (80, 3) and clf.train_seconds_ > 0
    again = PhaseClassifier.load(clf.save(tmp_path / "b.pt")).predict(ds)
    assert np.allclose(again["probabilities"], pred["probabilities"], atol=1e-5)
    assert again.attrs["method"] == "binned"
    with pytest.raises(ValueError, match="unknown method"):
        PhaseClassifier(method="svm").fit(ds, labels=lab)


@pytest.mark.slow
@pytest.mark.integration
def test_pipeline_registers_a_cnn_that_annotate_uses(tiled_client, tmp_path, monkeypatch, cli,
                                                     embedded_tracking):
    """specflow pipeline --method cnn → MLflow registry → annotate a run in Tiled."""
    from specflow.annotate import annotate
    from specflow.annotate.writer import node_key
    from specflow.data.io import write_netcdf
    from specflow.ingest import run_to_dataset
    from specflow.registry.tracking import configure_tracking

    monkeypatch.chdir(tmp_path)
    files = [str(write_netcdf(simulate_run("Fe", 80, seed=50 + i), tmp_path / f"{i}.nc"))
             for i in range(3)]  # two to train on, one for the gate
    cli(["pipeline", "--data", files[0], "--data", files[1], "--method", "cnn", "--corpus",
         "none", "--label-fraction", "0.25", "--name", "cnn-model", "--eval-data",
         files[2], "--workdir", tmp_path / "work"])
    configure_tracking(tmp_path / "work", must_exist=True)
    mv = mlflow.MlflowClient().get_model_version_by_alias("cnn-model", "champion")
    assert mv.tags["method"] == "cnn"
    params = mlflow.get_run(mv.run_id).data.params
    assert params["supervised.arch"] == "cnn" and params["supervised.steps"] == "150"
    uid = record_ramp(tiled_client, stop=30.0, num=40, seed=9,
                      md={"sample": f"sup-{uuid.uuid4().hex[:6]}"})
    (result,) = annotate(tiled_client, [uid], model_uri="models:/cnn-model@champion")
    assert result.status == "written"
    run = tiled_client[uid]
    node = run.base["specflow"][node_key("cnn-model", 1)]
    truth = run_to_dataset(run)["label"].values
    assert (node["label"].read() == truth).mean() > 0.75
    assert run.metadata["specflow"]["model"]["name"] == "cnn-model"


def test_cli_evaluate_a_supervised_model(tmp_path, cli):
    import json

    from specflow.data.io import write_netcdf

    paths = [str(write_netcdf(simulate_run("Fe", 60, seed=60 + i), tmp_path / f"{i}.nc"))
             for i in range(3)]
    out = cli(["evaluate", "--data", paths[0], paths[1], "--test", paths[2], "--method", "fnn",
               "--label-fraction", "0.2", "--json", tmp_path / "o.json"])
    assert "FNN-1D, cross-run" in out and "boundary err" in out
    saved = json.loads((tmp_path / "o.json").read_text())
    assert saved["method"] == "FNN-1D" and saved["train_seconds"] > 0
    assert saved["overall"]["recall"] > 0.6


def test_balanced_batches_draw_every_class_equally_often():
    from specflow.learn.supervised import _balanced_sampler

    labels = np.array([0] * 90 + [1] * 5 + [2] * 30)
    labelled = np.arange(len(labels)) + 1000  # indices into some larger set of curves
    draw = _balanced_sampler(labels, labelled, 64, np.random.default_rng(0))
    drawn = np.concatenate([draw() for _ in range(200)])
    assert drawn.size == 200 * 64 and set(drawn) <= set(labelled)
    shares = np.bincount(labels[drawn - 1000], minlength=3) / drawn.size
    np.testing.assert_allclose(shares, 1 / 3, atol=0.02)  # plain batches: 0.72 / 0.04 / 0.24


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_folding_batch_norms_leaves_the_outputs(arch):
    """What the predictor serves: BatchNorms after a convolution folded into it."""
    from specflow.models.supervised import build_network, fold_batch_norms

    torch.manual_seed(0)
    net = build_network(arch, 512)
    for m in net.modules():  # statistics as training leaves them, not the identity
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    folded = fold_batch_norms(net)
    x = torch.rand(16, 512)
    with torch.inference_mode():
        (a, ha), (b, hb) = net(x), folded(x)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ha, hb, atol=1e-5)
    left = sum(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    if arch == "cnn":
        assert left == 0
        assert not any(isinstance(m, torch.nn.ReLU) for m in folded.modules())
        relu_first = fold_batch_norms(net, pool_first=False)  # ReLU before each pool
        assert any(isinstance(m, torch.nn.ReLU) for m in relu_first.modules())
        with torch.inference_mode():
            c, hc = relu_first(x)
        assert torch.equal(b, c) and torch.equal(hb, hc)  # pool first: bit for bit
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())  # a copy


def test_a_convsc_network_can_start_from_a_pretrained_encoder(curves):
    _, c = curves
    start = SupervisedConfig(arch="convsc", steps=1, lr=0.0, init=str(SHIPPED_ENCODER),
                             device="cpu")
    trained = train_network(c, np.arange(len(c.x)), start).network
    pretrained = dict(load_checkpoint(SHIPPED_ENCODER).encoder.named_parameters())
    for name, value in trained.encoder.named_parameters():
        assert torch.equal(value, pretrained[name]), name
    fresh = train_network(c, np.arange(len(c.x)), replace(start, init=None)).network
    assert not torch.equal(fresh.encoder.conv1[0].weight, pretrained["conv1.0.weight"])
    assert training_fingerprint(start) != training_fingerprint(replace(start, init=None))
    with pytest.raises(ValueError, match="init starts a ConvSC encoder"):
        SupervisedConfig(arch="cnn", init=str(SHIPPED_ENCODER))


def test_a_cosine_learning_rate_changes_the_network_and_its_fingerprint(curves):
    _, c = curves
    constant = SupervisedConfig(arch="cnn", steps=20, batch_size=8, device="cpu")
    cosine = replace(constant, schedule="cosine")
    a, b = (train_network(c, np.arange(len(c.x)), cfg).network for cfg in (constant, cosine))
    assert not torch.equal(a.head.weight, b.head.weight)
    assert training_fingerprint(cosine) != training_fingerprint(constant)
    with pytest.raises(ValueError, match="learning-rate schedule"):
        SupervisedConfig(schedule="step")

