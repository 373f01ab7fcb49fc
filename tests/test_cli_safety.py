"""The real `specflow` CLI refuses what would lose data and fails fast with one clear line."""

from __future__ import annotations

import time

from typer.testing import CliRunner

from specflow.cli import app
from specflow.demo import MARKER, prepare_workdir
from specflow.servers.ports import free_port


def test_demo_never_removes_a_directory_it_did_not_create(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "precious.nc").write_text("a user's file")
    out = CliRunner().invoke(app, ["demo", "--workdir", str(data)])
    assert out.exit_code == 2, out.output
    assert "not created by the specflow demo" in " ".join(out.output.split())
    assert "Traceback" not in out.output
    assert (data / "precious.nc").read_text() == "a user's file"


def test_fresh_demo_workdir_removes_only_the_demos_own_entries(tmp_path):
    work = prepare_workdir(tmp_path / "work", fresh=True)
    assert (work / MARKER).is_file()
    for name in ("tiled", "mlflow", "figures"):
        (work / name).mkdir()
        (work / name / "x").write_text("old")
    (work / "notes.txt").write_text("the user's notes")
    prepare_workdir(work, fresh=True)
    assert not (work / "tiled").exists() and not (work / "mlflow").exists()
    assert (work / "notes.txt").read_text() == "the user's notes"
    (work / "tiled").mkdir()
    prepare_workdir(work, fresh=False)  # --keep
    assert (work / "tiled").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (prepare_workdir(empty, fresh=True) / MARKER).is_file()  # an empty dir is fine


def test_unreachable_tiled_is_one_line_and_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    uri = f"http://127.0.0.1:{free_port()}/api/v1"
    for args in (["annotate", "--tiled-uri", uri, "--all", "--workdir", str(tmp_path)],
                 ["phases", "--tiled-uri", uri], ["ingest-demo", "--tiled-uri", uri]):
        t0 = time.monotonic()
        out = CliRunner().invoke(app, args)
        text = " ".join(out.output.split())
        assert out.exit_code == 1, out.output
        assert f"cannot reach Tiled at {uri}" in text and "Traceback" not in out.output
        assert time.monotonic() - t0 < 10  # no 30 s of retries against a refused port


def test_data_paths_are_taken_as_given_or_globbed(tmp_path):
    import pytest

    from specflow.data.sources import NoSuchRun, find_runs

    odd = [tmp_path / "fe run (1).nc", tmp_path / "fe,2.nc", tmp_path / "[3].nc"]
    for p in odd:
        p.write_text("x")

    def files(values):
        return [run.files[0] for run in find_runs(values)]

    assert files([str(p) for p in odd]) == odd  # no splitting on spaces or commas
    assert files([str(tmp_path / "fe*.nc")]) == sorted(odd[:2])
    with pytest.raises(NoSuchRun, match="missing.nc"):
        files([str(tmp_path / "missing.nc")])


def test_pretrain_on_a_file_name_with_spaces_and_brackets(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    data = tmp_path / "my runs" / "fe (1).nc"
    data.parent.mkdir()
    runner = CliRunner()
    out = runner.invoke(app, ["simulate", "--out", str(data), "--curves", "40", "--seed", "1"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["pretrain", "--data", str(data), "--epochs", "1",
                              "--workdir", str(tmp_path / "work"), "--device", "cpu"])
    assert out.exit_code == 0, out.output
    run_id = out.output.split("pretraining run")[-1].split()[0]
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["data.fe _1_.nc"]  # the file's fingerprint, under a legal key
    mlflow.set_tracking_uri(None)


def test_a_store_written_since_the_demo_is_never_removed(tmp_path):
    import pytest

    from specflow.demo import WorkdirNotOurs, finish_workdir

    work = prepare_workdir(tmp_path / "work", fresh=True)
    (work / "mlflow").mkdir()
    (work / "mlflow" / "mlflow.db").write_text("the demo's models")
    finish_workdir(work)
    prepare_workdir(work, fresh=True)  # unchanged since the demo: removed
    assert not (work / "mlflow").exists()
    (work / "mlflow").mkdir()
    (work / "mlflow" / "mlflow.db").write_text("the demo's models")
    finish_workdir(work)
    (work / "mlflow" / "mlflow.db").write_text("the demo's models + the user's own model")
    with pytest.raises(WorkdirNotOurs, match="changed since the demo"):
        prepare_workdir(work, fresh=True)
    assert "user's own" in (work / "mlflow" / "mlflow.db").read_text()
    old = tmp_path / "old"  # an older demo's dir (no marker): refused, not guessed at
    (old / "mlflow").mkdir(parents=True)
    (old / "mlflow" / "mlflow.db").write_text("")
    with pytest.raises(WorkdirNotOurs):
        prepare_workdir(old, fresh=True)


def test_a_users_figures_folder_is_not_mistaken_for_a_demo_dir(tmp_path):
    import pytest

    from specflow.demo import WorkdirNotOurs

    mine = tmp_path / "mine"
    (mine / "figures").mkdir(parents=True)
    (mine / "figures" / "fig1.png").write_text("mine")
    with pytest.raises(WorkdirNotOurs):
        prepare_workdir(mine, fresh=True)
    assert (mine / "figures" / "fig1.png").exists()
