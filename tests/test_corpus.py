"""Simulated corpora and the models trained on them: the recipe, the cache, zero-label
prediction and the hand labels that adapt the corpus model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from specflow.data.preprocess import Preprocessing
from specflow.learn.classifier import PhaseClassifier, named_transitions
from specflow.learn.corpus_model import (
    CORPUS_TRAINING,
    corpus_network,
    corpus_training,
    network_name,
    with_arch,
)
from specflow.learn.fitting import recalibration
from specflow.simulator.corpus import CorpusRecipe, build_corpus, corpus_path, recipe_from_text
from specflow.simulator.simulate import Instrument, simulate_family

pytestmark = [pytest.mark.slow]

TINY = CorpusRecipe(("Fe",), runs=6, curves=(60, 80))
SHORT = corpus_training(steps=120)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECFLOW_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def runs():
    return simulate_family("Fe", 4, n_curves=(80, 100), seed=21)


def test_recipe_is_named_validated_and_fingerprinted():
    assert CorpusRecipe("fe").transitions == ("Fe",)  # one name, any case
    again = CorpusRecipe.from_dict(TINY.to_dict())
    assert again == TINY and again.fingerprint() == TINY.fingerprint()
    assert TINY.fingerprint() != CorpusRecipe(("Fe",), runs=7, curves=(60, 80)).fingerprint()
    assert TINY.fingerprint(Preprocessing()) != TINY.fingerprint(
        Preprocessing(grid=(1.3, 6.0, 1024)))
    with pytest.raises(ValueError, match="unknown transition 'Zr'"):
        CorpusRecipe(("Zr",))
    with pytest.raises(ValueError, match="≥ 2 runs"):
        CorpusRecipe(("Fe",), runs=1)


def test_a_known_pressure_marker_joins_every_corpus_run():
    told = CorpusRecipe(("Fe",), runs=6, curves=(60, 80), marker="Au")
    assert told.name == "Fe+Au" and CorpusRecipe.from_dict(told.to_dict()) == told
    assert told.fingerprint() != TINY.fingerprint()
    bare = CorpusRecipe(("Fe",), runs=6, curves=(60, 80), marker=None)
    assert "marker" not in bare.to_dict()  # recipes without one keep their fingerprints
    assert CorpusRecipe.from_dict(bare.to_dict()) == bare  # and read back without one
    with pytest.raises(ValueError, match="unknown pressure marker 'Ru'"):
        CorpusRecipe(("Fe",), marker="Ru")
    runs = simulate_family("Fe", 2, n_curves=30, seed=4, marker="Pt")
    assert all("marker=Pt" in run.attrs["artefacts"] for run in runs)
    plain = simulate_family("Fe", 2, n_curves=30, seed=4)
    assert not any("marker=" in run.attrs["artefacts"] for run in plain)


def test_by_default_each_corpus_run_draws_its_marker():
    assert CorpusRecipe(("Fe",)).marker == "any" and CorpusRecipe(("Fe",)).name == "Fe+any"
    runs = simulate_family("Fe", 12, n_curves=20, seed=4, marker="any")
    drawn = [next((m for m in ("Au", "Pt") if f"marker={m}" in run.attrs["artefacts"]), None)
             for run in runs]
    assert set(drawn) == {None, "Au", "Pt"}  # 12 draws of 3 equally likely: all seen
    again = simulate_family("Fe", 12, n_curves=20, seed=4, marker="any")
    assert [r.attrs["artefacts"] for r in again] == [r.attrs["artefacts"] for r in runs]


def test_a_corpus_can_draw_each_run_s_broadening_law_and_the_default_keeps_its_name(
        tmp_path, monkeypatch):
    from specflow.simulator import corpus as corpus_module

    mixed = CorpusRecipe(("Fe",), broadening="any")
    assert "broadening" not in CorpusRecipe(("Fe",)).to_dict()  # fingerprints kept
    assert CorpusRecipe.from_dict(mixed.to_dict()) == mixed
    assert mixed.fingerprint() != CorpusRecipe(("Fe",)).fingerprint()
    assert mixed.name == "Fe+any+broadening-any"
    with pytest.raises(ValueError, match="unknown broadening law 'tan'"):
        CorpusRecipe(("Fe",), broadening="tan")
    runs = simulate_family("Fe", 4, n_curves=20, seed=4, broadening="any")
    plain = simulate_family("Fe", 4, n_curves=20, seed=4)
    strain = [run.attrs.get("strain_per_gpa", 0.0) for run in runs]
    assert 0 < sum(s > 0 for s in strain) < len(runs)  # both laws drawn
    for run, before, s in zip(runs, plain, strain, strict=True):
        assert np.array_equal(run["pressure"].values, before["pressure"].values)
        if not s:  # a run that kept the constant law is the run without the option
            assert np.array_equal(run["intensity"].values, before["intensity"].values,
                                  equal_nan=True)
        else:  # the strain law at 0.5–2× the width of the run's own constant law
            own = Instrument(energy_kev=before.attrs["energy"],
                             fwhm_per_gpa=json.loads(before.attrs["simulation"])[
                                 "conditions"]["instrument"]["fwhm_per_gpa"]).strain_law()
            assert 0.5 <= s / own.strain_per_gpa <= 2.0
    seen = []
    real = corpus_module.simulate_family
    monkeypatch.setattr(corpus_module, "simulate_family",
                        lambda *a, **kw: seen.append(kw["broadening"]) or real(*a, **kw))
    build_corpus(CorpusRecipe(("Fe",), runs=2, curves=(20, 20), broadening="any"),
                 directory=tmp_path)
    assert seen == ["any", "any"]  # the recipe's law reaches the simulator


def test_a_corpus_is_named_by_text_with_an_optional_marker(runs):
    assert recipe_from_text("fe+au") == CorpusRecipe(("Fe",), marker="Au")
    assert recipe_from_text("Fe+FeO") == CorpusRecipe(("Fe", "FeO"), marker="any")
    assert recipe_from_text("Fe+none").marker is None
    for bad in ("Au", "Fe+Au+Pt", "Fe+Zr"):
        with pytest.raises(ValueError):
            recipe_from_text(bad)
    assert PhaseClassifier(corpus="Fe+Pt").resolve_corpus(runs).marker == "Pt"
    with pytest.raises(ValueError, match="at most one marker"):
        PhaseClassifier(corpus="Fe+Au+Pt").fit(runs)


def test_corpus_is_built_once_and_read_back_from_the_cache(cache):
    first = build_corpus(TINY)
    assert first.path == corpus_path(TINY, Preprocessing()) and first.path.exists()
    assert first.x.shape == (len(first), 2048) and set(np.unique(first.label)) == {0, 1, 2}
    assert len(np.unique(first.run)) == TINY.runs
    again = build_corpus(TINY)
    assert np.array_equal(again.label, first.label) and again.recipe == TINY


def test_a_fresh_corpus_hands_back_the_curves_its_cache_holds(tmp_path):
    """Simulated now or read from the cache (float16), the same curves: a network trained
    right after simulating is the one trained later."""
    fresh = build_corpus(TINY, directory=tmp_path)
    cached = build_corpus(TINY, directory=tmp_path)
    assert fresh.path is not None and cached.path == fresh.path
    assert fresh.x.dtype == cached.x.dtype == np.float32
    assert np.array_equal(fresh.x, cached.x)


def test_corpus_network_is_trained_once_then_loaded(cache):
    trained = corpus_network(TINY, SHORT)
    path = cache / "networks" / network_name(TINY, Preprocessing(), SHORT)
    assert path.exists() and trained.arch == "cnn"
    loaded = corpus_network(TINY, SHORT)
    x = build_corpus(TINY).x[:5]
    import torch

    with torch.inference_mode():
        a, b = trained.network.eval()(torch.as_tensor(x))[0], loaded.network(torch.as_tensor(x))[0]
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_architecture_settings_name_a_new_network_and_defaults_keep_theirs():
    plain = network_name(TINY, Preprocessing(), SHORT)
    assert network_name(TINY, Preprocessing(), corpus_training(steps=120, arch_kwargs={})) \
        == plain
    wide = network_name(TINY, Preprocessing(), corpus_training(steps=120,
                                                               arch_kwargs={"channels": 16}))
    assert wide != plain
    windows = {network_name(TINY, Preprocessing(), corpus_training(steps=120, arch="convsct",
                                                                   window=w)) for w in (16, 32)}
    assert len(windows) == 2  # a sequence network's window is part of its name
    root = Preprocessing(intensity="sqrt")  # another input: another corpus and network
    assert network_name(TINY, root, SHORT) != plain and Preprocessing().intensity == "linear"


def test_a_fraction_head_trains_beside_the_labels_and_leaves_the_network_as_it_was(cache):
    """``fraction_weight``: a training-only head reads the high-phase fraction; the trained
    network has the same weights' shapes as without it, and its own name."""
    from specflow.learn.corpus_model import corpus_curves, train_on_corpus
    from specflow.learn.supervised import SupervisedConfig, train_network

    corpus = build_corpus(TINY)
    short = corpus_training(steps=30)
    with_head = corpus_training(steps=30, fraction_weight=1.0)
    plain = train_on_corpus(corpus, short, device="cpu").network.state_dict()
    headed = train_on_corpus(corpus, with_head, device="cpu").network.state_dict()
    assert {k: v.shape for k, v in headed.items()} == {k: v.shape for k, v in plain.items()}
    assert any(not np.allclose(plain[k], headed[k]) for k in plain)  # the head's loss acted
    assert network_name(TINY, Preprocessing(), with_head) != network_name(
        TINY, Preprocessing(), short)
    assert network_name(TINY, Preprocessing(), corpus_training(steps=30, fraction_weight=0.0)) \
        == network_name(TINY, Preprocessing(), short)
    curves = corpus_curves(corpus)
    curves.fraction = None
    with pytest.raises(ValueError, match="fraction is known"):
        train_network(curves, np.arange(10), SupervisedConfig(steps=2, fraction_weight=1.0))
    with pytest.raises(ValueError, match="reads sequences"):
        SupervisedConfig(arch="convsct", fraction_weight=1.0)
    # a classifier's corpus settings with the head, given to a sequence network: no head
    assert with_arch(with_head, "convsct").fraction_weight == 0.0
    assert with_arch(with_head, "convsc").fraction_weight == 1.0


def test_corpus_settings_with_the_fraction_head_train_a_sequence_network_without_it(cache,
                                                                                    runs):
    unlabelled = [r.drop_vars("label") for r in runs[:2]]
    clf = PhaseClassifier(method="convsct", corpus=TINY, corpus_training=corpus_training(
        steps=4, fraction_weight=1.0))
    clf.fit(unlabelled)  # the settings name the CNN; the sequence network has no head
    assert clf.training_log_["training"]["arch"] == "convsct"
    assert clf.training_log_["training"]["fraction_weight"] == 0.0


def test_a_convsc_network_trains_on_a_corpus_only_when_given_one(cache, runs):
    unlabelled = [r.drop_vars("label") for r in runs[:2]]
    assert PhaseClassifier(method="convsc").resolve_corpus(unlabelled) is None  # auto: none
    clf = PhaseClassifier(method="convsc", corpus=TINY,
                          corpus_training=corpus_training(steps=20, arch="convsc"))
    clf.fit(unlabelled)  # zero labels: only a corpus network can do this
    assert clf.method_ == "convsc" and clf.training_log_["training"]["arch"] == "convsc"
    assert clf.predict(runs[2])["label"].shape == (runs[2].sizes["curve"],)


def test_zero_label_mode_labels_a_run_with_no_hand_label(runs):
    """The default model on runs that name Fe: the shipped Fe corpus network, no label."""
    unlabelled = [r.drop_vars("label") for r in runs[:2]]
    clf = PhaseClassifier().fit(unlabelled)
    assert clf.method_ == "cnn" and clf.n_labels_ == 0
    assert clf.corpus_ == CorpusRecipe.for_transition("Fe").to_dict()
    assert clf.training_log_["training"]["augmentation"] == "instrument-wide"
    for run in runs[2:]:
        pred = clf.predict(run)
        assert (pred["label"].values == run["label"].values).mean() > 0.9
        assert 1 in pred["label"].values  # the coexistence range appears
        assert pred.attrs["onset_pressure"] < pred.attrs["end_pressure"]
    with pytest.raises(ValueError, match="no labelled curves and no corpus"):
        PhaseClassifier(corpus=None).fit(unlabelled)


def test_hand_labels_recalibrate_the_corpus_network_towards_them(cache, runs):
    few = [r["label"].where(np.arange(r.sizes["curve"]) % 10 == 0, -1) for r in runs[:2]]
    adapted = PhaseClassifier(corpus=TINY, corpus_training=SHORT).fit(runs[:2], few)
    plain = PhaseClassifier(corpus=TINY, corpus_training=SHORT, adapt=False).fit(runs[:2], few)
    assert "logit_scale" in adapted.bundle_ and "logit_scale" not in plain.bundle_
    assert adapted.n_labels_ == sum(int((f >= 0).sum()) for f in few)
    # the pull towards the network: with a huge pull the recalibration is the identity
    logp = np.log(np.full((6, 3), 1 / 3))
    a, b = recalibration(logp, np.array([0, 0, 0, 2, 2, 2]), strength=1e6)
    np.testing.assert_allclose(a, 1, atol=1e-4) and np.testing.assert_allclose(b, 0, atol=1e-4)
    a, b = recalibration(logp, np.array([0, 0, 0, 2, 2, 2]), strength=1e-3)
    assert b[0] > b[1] and b[2] > b[1]  # labels never "during": its bias falls


def test_the_estimator_follows_scikit_learn_conventions():
    clf = PhaseClassifier(method="raw", corpus=None, seed=3)
    params = clf.get_params()
    assert params["method"] == "raw" and params["seed"] == 3 and params["corpus"] is None
    twin = clone(clf)
    assert twin.get_params() == params and twin is not clf
    assert clone(clf.set_params(seed=4)).seed == 4
    PhaseClassifier(method="nope")  # constructing stores; fit checks
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        PhaseClassifier(method="nope").fit(simulate_family("Fe", 1, n_curves=30, seed=1))


def test_auto_corpus_follows_the_transition_the_runs_name(runs):
    assert named_transitions(runs) == ("Fe",)
    zr = runs[0].assign_attrs(material="Zr", sample="Zr-1")
    assert named_transitions([*runs, zr]) is None  # a run of no built-in transition: none
    feo = simulate_family("FeO", 1, n_curves=30, seed=2)[0]
    assert named_transitions([feo, *runs]) == ("Fe", "FeO")  # one corpus of both
    named = [runs[0].assign_attrs(material=m) for m in ("iron", "Fe0.95O", "wüstite")]
    assert named_transitions(named) == ("Fe", "FeO")  # common names and formulas
    described = runs[0].assign_attrs(material="", sample="Fe foil, run 3")
    assert named_transitions([described]) == ("Fe",)  # a description that starts with it
    in_medium = runs[0].assign_attrs(material="", sample="Zr in NaCl")
    assert named_transitions([in_medium]) is None  # the medium is not the sample
    with pytest.warns(UserWarning, match="names FeO, KCl; no corpus is chosen"):
        assert named_transitions([runs[0].assign_attrs(material="FeO + KCl")]) is None
    clf = PhaseClassifier()
    assert clf.resolve_corpus(runs) == CorpusRecipe.for_transition("Fe")
    assert PhaseClassifier(corpus=None).resolve_corpus(runs) is None
    assert PhaseClassifier(method="raw").resolve_corpus(runs) is None  # a probe: labels only
    assert PhaseClassifier(method="raw", corpus="Fe").resolve_corpus(runs) == clf.resolve_corpus(
        runs)


def test_the_shipped_networks_match_the_default_corpora():
    """Every built-in transition (and the demo's Fe + FeO) has a shipped network for the
    default recipe, preprocessing and training, and no other ships: PhaseClassifier() never
    trains one there."""
    from specflow.learn.corpus_model import SHIPPED
    from specflow.simulator.transitions import TRANSITIONS

    expected = set()
    for names in [*((t,) for t in TRANSITIONS), ("Fe", "FeO")]:
        name = network_name(CorpusRecipe(names), Preprocessing(), CORPUS_TRAINING)
        assert (SHIPPED / name).exists(), f"{name}: run benchmarks/corpus_networks.py"
        expected.add(name)
    assert {p.name for p in SHIPPED.glob("*.pt")} == expected  # no stale network ships
