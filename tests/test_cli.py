"""The real ``specflow`` app: every command answers, the MLproject entry points are the CLI's
own commands with the same options and defaults, and the lifecycle runs step by step."""

from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path

import click
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from specflow.cli import COMMANDS, app, load_command
from specflow.cli.mlproject import STEPS, command_argv
from specflow.data.io import write_netcdf
from specflow.simulator.simulate import simulate_run

REPO = Path(__file__).resolve().parents[1]
MLPROJECT = yaml.safe_load((REPO / "mlflow_projects" / "MLproject").read_text())


def test_every_command_is_listed_without_imports_and_loads_with_its_help(cli):
    assert set(COMMANDS) == {
        "simulate", "plot", "demo", "ingest-demo", "integrate", "evaluate", "pretrain", "probe",
        "register", "promote", "pipeline", "annotate", "watch", "phases", "suggest-labels",
        "label", "ingest", "export", "register-encoder",
        "library", "train-identifier", "identify", "live", "admin"}
    listing = " ".join(cli(["--help"]).split())
    for name, entry in COMMANDS.items():
        command = load_command(name)
        first_line = " ".join(command.help.split("\n\n")[0].split())
        assert entry.help == first_line, f"COMMANDS[{name!r}].help is out of date"
        assert name in listing and entry.help[:30] in listing
        assert first_line[:40] in " ".join(cli([name, "--help"]).split())


def test_specflow_help_imports_no_command_module():
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from specflow.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'mlflow', 'tiled', 'pymatgen', 'xarray') or m.startswith('specflow.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['specflow.cli', 'specflow.cli.errors']"


def _option(command: click.Command, parameter: str) -> click.Option:
    flag = "--" + parameter.replace("_", "-")
    matches = [p for p in command.params if flag in getattr(p, "opts", ())]
    assert matches, f"{command.name} has no {flag} for the MLproject parameter {parameter}"
    return matches[0]


def _as_text(default: object) -> str:
    if default is None or default == [] or default == ():
        return ""
    if isinstance(default, Enum):
        return str(default.value)
    return str(default)


@pytest.mark.parametrize("step", STEPS)
def test_mlproject_parameters_are_the_cli_options_with_the_cli_defaults(step):
    entry = MLPROJECT["entry_points"][step]
    command = load_command(step)
    for parameter, spec in entry["parameters"].items():
        option = _option(command, parameter)
        assert f"--{parameter.replace('_', '-')} {{{parameter}}}" in " ".join(
            entry["command"].split()), f"{step}: {parameter} not passed on"
        if isinstance(spec, str):  # no default: required in both
            assert option.required, f"{step} --{parameter} should be required"
        else:
            assert _as_text(option.default) == spec["default"], (step, parameter)
    assert entry["command"].startswith(f"python -m specflow.cli.mlproject {step} ")


def test_mlproject_argv_drops_empty_values_and_splits_only_list_options():
    argv = command_argv("pipeline", [
        "--data", "a.nc,b.nc", "--run", "", "--query", "start.sample=Fe,start.x=1",
        "--method", "raw", "--epochs", "", "--name", "a,b", "--eval-data", "g.nc"])
    assert argv == ["pipeline", "--data", "a.nc", "--data", "b.nc",
                    "--query", "start.sample=Fe", "--query", "start.x=1", "--method", "raw",
                    "--name", "a,b", "--eval-data", "g.nc"]
    with pytest.raises(click.UsageError, match="unknown step"):
        command_argv("evaluate", [])
    with pytest.raises(click.UsageError, match="pairs"):
        command_argv("register", ["--probe-run"])
    with pytest.raises(SystemExit) as exc:  # the command's own parser checks the values
        app(command_argv("pipeline", ["--method", "svm"]), prog_name="specflow")
    assert exc.value.code == 2


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("cli-data")
    grid = np.linspace(5, 25, 1000)
    return [write_netcdf(simulate_run(material, 64, seed=30 + i, two_theta=grid),
                         folder / f"{material}.nc") for i, material in enumerate(("Fe", "FeO"))]


def _last_word(output: str, prefix: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(prefix)]
    return line[len(prefix):].split(",")[0].strip()


@pytest.mark.slow
def test_a_registered_encoder_is_where_a_probe_starts(cli, data_files, tmp_path,
                                                      embedded_tracking):
    """register-encoder → the pyfunc gives the checkpoint's features → probe starts from it."""
    import mlflow

    from specflow.data.io import read_spectra
    from specflow.data.preprocess import prepare_curves
    from specflow.learn.data import wavelength_of
    from specflow.learn.pretrain import PretrainConfig, encode, pretrain
    from specflow.registry.encoder import load_registered_encoder

    runs = [read_spectra(f) for f in data_files]
    result = pretrain(runs, PretrainConfig.quick(epochs=1, batch_size=32, queue_size=64,
                                                 device="cpu"))
    checkpoint = result.save(tmp_path / "ssl.pt")
    (tmp_path / "recipe.json").write_text('{"transitions": ["Fe", "FeO"], "runs": 2}')
    work = ["--workdir", tmp_path]
    out = cli(["register-encoder", checkpoint, "--corpus-recipe", tmp_path / "recipe.json",
               "--alias", "champion", *work])
    assert "registered specflow-encoder version 1 (specflow-encoder@champion)" in out
    mv = MlflowClient().get_model_version_by_alias("specflow-encoder", "champion")
    assert mv.tags["epochs_trained"] == "1" and '"FeO"' in mv.tags["corpus"]
    loaded = load_registered_encoder("models:/specflow-encoder@champion")
    ds = runs[0]
    lam = wavelength_of(ds)
    x = prepare_curves(ds.intensity.values, ds.two_theta.values, result.config.preprocessing,
                       lam, result.grid).x
    want = encode(result.encoder, x, device="cpu")
    assert np.array_equal(encode(loaded.encoder, x, device="cpu"), want)
    served = mlflow.pyfunc.load_model("models:/specflow-encoder/1").predict(
        ds.intensity.values.astype(np.float32), params={"two_theta": ds.two_theta.values.tolist(),
                                                         "wavelength": lam})
    assert np.allclose(served, want, atol=1e-5)
    data = [a for f in data_files for a in ("--data", f)]
    out = cli(["probe", "--pretrain-run", "models:/specflow-encoder@champion", *data,
               "--holdout", "0.3", *work])
    assert "probe run " in out and "precision" in out


def test_the_shipped_encoder_registers_with_its_recipe_and_training_log(cli, tmp_path,
                                                                       embedded_tracking):
    """register-encoder with no checkpoint: the SSL encoder specflow ships, its corpus
    recipe and per-epoch losses in MLflow, loadable offline."""
    from specflow.registry.encoder import SHIPPED_ENCODER, load_registered_encoder

    out = cli(["register-encoder", "--workdir", tmp_path])
    assert "registered specflow-encoder version 1" in out
    mv = MlflowClient().get_model_version("specflow-encoder", "1")
    assert mv.tags["method"] == "rrmoco" and '"ZnS"' in mv.tags["corpus"]
    assert mv.tags["epochs_trained"] == mv.tags["epochs_planned"]  # a finished run
    losses = MlflowClient().get_metric_history(mv.run_id, "pretrain.loss")
    assert len(losses) == int(mv.tags["epochs_trained"]) and losses[-1].value < losses[0].value
    loaded = load_registered_encoder("models:/specflow-encoder/1")
    assert SHIPPED_ENCODER.stat().st_size < 2e6 and loaded.corpus["corpus"]["runs"] == 20


@pytest.mark.slow
def test_lifecycle_step_by_step(cli, data_files, tmp_path, embedded_tracking):
    """pretrain → probe → register → promote, each a separate invocation of the app."""
    data = [a for f in data_files for a in ("--data", f)]
    work = ["--workdir", tmp_path]
    out = cli(["pretrain", *data, "--method", "rr", "--epochs", "1", "--device", "cpu", *work])
    pretrain_run = _last_word(out, "pretraining run ")
    out = cli(["probe", "--pretrain-run", pretrain_run, *data, "--holdout", "0.3", *work])
    probe_run = _last_word(out, "probe run ")
    assert "precision" in out and "recall" in out  # metrics on the held-out labels
    out = cli(["register", "--probe-run", probe_run, "--name", "steps", *work])
    assert "registered steps version 1" in out
    gate = write_netcdf(simulate_run("Fe", 64, seed=33, two_theta=np.linspace(5, 25, 1000)),
                        tmp_path / "gate.nc")  # a run the model was not trained on
    out = cli(["promote", "--version", "1", "--name", "steps", "--eval-data", gate, *work])
    assert "steps@champion -> version 1" in out
    mv = MlflowClient().get_model_version_by_alias("steps", "champion")
    assert str(mv.version) == "1" and mv.run_id == probe_run
    # a version that does not exist is refused with the registry's reason, exit 1
    out = cli(["promote", "--version", "7", "--name", "steps", *work], exit_code=1)
    assert "version=7) not found" in out and "Traceback" not in out


@pytest.mark.slow
@pytest.mark.integration
def test_demo_runs_end_to_end_without_library_noise(cli, tmp_path, embedded_tracking):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        out = cli(["demo", "--runs", "1", "--curves", "40", "--workdir", tmp_path / "demo"])
    for stage in ("1 · ingest", "2 · learn", "3 · annotate", "4 · query phases",
                  "5 · area detector"):
        assert stage in out
    assert "external data in Tiled" in out and "40 frames of 512×512" in out
    assert "registered specflow-phase version 1" in out and "done in" in out
    assert len(list((tmp_path / "demo" / "figures").glob("*.png"))) >= 2
    for noise in ("INFO mlflow", "Successfully registered", "Downloading artifacts",
                  "Warning", "warn("):
        assert noise not in out, noise
    shown = [w for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning,
                                                             FutureWarning))]
    assert not shown, [str(w.message) for w in shown]
