"""The notebook API: specflow.simulate → PhaseClassifier.fit → predict as xarray."""

from __future__ import annotations

import numpy as np
import pytest

import specflow
from specflow import PhaseClassifier

pytestmark = [pytest.mark.slow]

@pytest.fixture(scope="module")
def fitted():
    ds = specflow.simulate("Fe", curves=120, seed=3)
    lab = ds["label"].where(np.arange(120) % 8 == 0, -1)  # 15 evenly spaced labels
    return PhaseClassifier(method="raw", corpus=None).fit(ds, labels=lab), ds


def test_fit_predict_contract(fitted):
    clf, ds = fitted
    assert clf.n_labels_ == 15 and sum(clf.labels_per_class_) == 15
    other = specflow.simulate("Fe", curves=150, seed=4)
    pred = clf.predict(other)
    assert set(pred.data_vars) == {"label", "label_raw", "probabilities", "ood_score"}
    assert pred["label"].dims == ("curve",) and pred["probabilities"].dims == ("curve", "phase")
    assert list(pred["phase"].values) == ["before", "during", "after"]
    np.testing.assert_allclose(pred["probabilities"].sum("phase"), 1, atol=1e-5)
    assert np.array_equal(pred["pressure"].values, other["pressure"].values)
    assert (pred["label"].values == other["label"].values).mean() > 0.85
    assert np.all(np.diff(pred["label"].values[: np.argmax(other["pressure"].values)]) >= 0)


def test_save_load_round_trip(fitted, tmp_path):
    clf, ds = fitted
    again = PhaseClassifier.load(clf.save(tmp_path / "fe.pt"))
    a, b = clf.predict(ds), again.predict(ds)
    assert np.array_equal(a["label"].values, b["label"].values)
    np.testing.assert_allclose(a["probabilities"].values, b["probabilities"].values, atol=1e-6)


def test_every_given_label_is_used_across_runs():
    runs = [specflow.simulate("Fe", curves=60, seed=s) for s in (5, 6)]
    labels = [r["label"].where(np.arange(60) % 5 == 0, -1) for r in runs]
    clf = PhaseClassifier(method="raw", corpus=None).fit(runs, labels=labels)
    assert clf.n_labels_ == sum(int((lab >= 0).sum()) for lab in labels) == 24


def test_parameters_and_misuse_fail_early_and_clearly():
    ds = specflow.simulate("Fe", curves=40, seed=1)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        PhaseClassifier(method="nope").fit(ds)
    with pytest.raises(ValueError, match="epochs"):
        PhaseClassifier(epochs=0).fit(ds)
    with pytest.raises(RuntimeError, match="not fitted"):
        PhaseClassifier(method="raw", corpus=None).predict(ds)
    with pytest.raises(ValueError, match="39 labels for 40 curves"):
        PhaseClassifier(method="raw", corpus=None).fit(ds, labels=np.zeros(39, int))
    with pytest.raises(ValueError, match=r"found \[3.0, 255.0\]"):
        PhaseClassifier(method="raw", corpus=None).fit(ds, labels=np.r_[0, 3, 255, np.zeros(37)])
    masked = ds["label"].where(np.arange(40) % 10 == 0)  # NaN elsewhere: unknown, not 0
    assert PhaseClassifier(method="raw", corpus=None).fit(ds, labels=masked).n_labels_ == 4
    with pytest.raises(ValueError, match="no labelled curves"):
        PhaseClassifier(method="raw", corpus=None).fit(ds, labels=np.full(40, -1))
    with pytest.raises(ValueError, match="two phases"):
        PhaseClassifier(method="raw", corpus=None).fit(ds, labels=np.zeros(40, int))
    with pytest.raises(ValueError, match="unknown corpus 'Zr'"):
        PhaseClassifier(corpus="Zr").fit(ds, labels=masked)


def test_settings_are_checked_before_training():
    """A typo in any string setting fails when the object is made (configs) or fitted (the
    estimator, which stores its parameters as given, as scikit-learn asks), never minutes
    into training."""
    from typing import get_args

    from specflow.learn.classifier import MethodName
    from specflow.learn.names import METHODS
    from specflow.learn.pretrain import PretrainConfig
    from specflow.learn.probe import ProbeConfig
    from specflow.learn.supervised import SupervisedConfig

    assert set(get_args(MethodName)) == {"auto", *METHODS}  # the hint lists every method
    ds = specflow.simulate("Fe", curves=20, seed=1)
    bad = [
        (lambda: PhaseClassifier(device="gpu").fit(ds), "unknown device 'gpu'"),
        (lambda: ProbeConfig(solver="adam"), "unknown solver 'adam'"),
        (lambda: ProbeConfig(augmentation="physic"), "unknown augmentation group 'physic'"),
        (lambda: SupervisedConfig(augmentation="G9"), "unknown augmentation group 'G9'"),
        (lambda: SupervisedConfig(arch="mlp"), "unknown architecture 'mlp'"),
        (lambda: SupervisedConfig(steps=0), "steps and batch_size"),
        (lambda: PretrainConfig(tmp_target="temperature"), "unknown tmp_target"),
        (lambda: PretrainConfig(init="xavier"), "unknown init"),
        (lambda: PretrainConfig(device="cuda:x"), "unknown device"),
    ]
    for make, message in bad:
        with pytest.raises(ValueError, match=message):
            make()
    PhaseClassifier(device="cuda:1")._check_params()  # a device name is checked without a GPU


def test_import_specflow_stays_light():
    import subprocess
    import sys

    code = "import sys, specflow; print('torch' in sys.modules, 'mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr
