"""A served model runs in an environment built from nothing but its own requirements.txt.

This is what ``mlflow models serve`` or any inference service does: create a fresh virtual
environment, install what the model declares, load it with ``mlflow.pyfunc.load_model``.
One install (about a minute from the package index) per test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import mlflow
import numpy as np
import pytest

from specflow.learn.data import wavelength_of
from specflow.simulator.simulate import simulate_run

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PREDICT = """
import json, sys
import numpy as np
import mlflow.pyfunc
import importlib.util
assert importlib.util.find_spec("specflow") is None, "specflow must come with the model only"
model = mlflow.pyfunc.load_model(sys.argv[1])
params = json.load(open(sys.argv[3]))
out = model.predict(np.load(sys.argv[2]), params=params)
np.save(sys.argv[4], out[["label", "p0", "p1", "p2"]].to_numpy(dtype=float))
"""


def test_a_served_model_predicts_in_a_clean_environment_from_its_requirements(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import specflow
    from specflow.registry.classifier import log_classifier

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    try:
        run = simulate_run("Fe", 60, seed=5)
        clf = specflow.PhaseClassifier().fit(run)  # the default method, zero labels
        experiment = mlflow.MlflowClient(uri).create_experiment("served-model-env")
        with mlflow.start_run(experiment_id=experiment):  # leaves the active experiment be
            info = log_classifier(clf)
        model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri,
                                                             dst_path=str(tmp_path / "model")))
    finally:
        mlflow.set_tracking_uri(None)
    requirements = (model_dir / "requirements.txt").read_text()
    assert "pybaselines" in requirements and "torch" in requirements

    env_dir = tmp_path / "clean"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    clean_env = {k: v for k, v in os.environ.items()
                 if not k.startswith(("PYTHON", "MLFLOW_", "VIRTUAL_ENV"))}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(model_dir / "requirements.txt")],
        env=clean_env, capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-2000:]

    curves = run["intensity"].values.astype(np.float32)
    np.save(tmp_path / "curves.npy", curves)
    params = {"two_theta": run["two_theta"].values.tolist(), "wavelength": wavelength_of(run),
              "pressure": run["pressure"].values.tolist()}
    (tmp_path / "params.json").write_text(json.dumps(params))
    (tmp_path / "predict.py").write_text(PREDICT)
    served = subprocess.run(
        [str(python), "predict.py", str(model_dir), "curves.npy", "params.json", "out.npy"],
        cwd=tmp_path, env=clean_env, capture_output=True, text=True, timeout=600)
    assert served.returncode == 0, served.stderr[-2000:]

    out = np.load(tmp_path / "out.npy")
    expected = clf.predict(run)
    assert np.array_equal(out[:, 0].astype(int), expected["label"].values)
    np.testing.assert_allclose(out[:, 1:], expected["probabilities"].values, atol=1e-5)
