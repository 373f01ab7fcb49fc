"""The end-of-run Prefect flow (specflow.annotate.flows) under Prefect's test harness (a real,
temporary Prefect server), against the real Tiled server and MLflow registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import record_ramp

pytest.importorskip("prefect")  # the optional extra; `make test` installs it

pytestmark = [pytest.mark.slow, pytest.mark.integration]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_end_of_run_flow_annotates_retries_and_fails_cleanly(harness, tiled_server,
                                                            tiled_client, mlflow_store,
                                                            monkeypatch):
    import specflow.annotate.flows as flows
    from specflow.annotate.analyzer import AnnotationResult

    uid = record_ramp(tiled_client, stop=30.0, num=20, seed=91)
    stop = dict(tiled_client[uid].metadata["stop"])  # as TiledWriter stored it
    monkeypatch.setenv("TILED_URI", tiled_server.api_uri)
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    real, calls = flows.annotate_run, []

    def down_once(client, run_uid, model, **kw):  # the first try meets a restarting server
        calls.append(run_uid)
        if len(calls) == 1:
            return AnnotationResult(run_uid, "failed", "ConnectError: server restarting")
        return real(client, run_uid, model, **kw)

    monkeypatch.setattr(flows, "annotate_run", down_once)
    monkeypatch.setattr(flows, "annotate_finished_run",
                        flows.annotate_finished_run.with_options(retry_delay_seconds=0))
    result = flows.end_of_run_annotation(stop, model_uri=mlflow_store.champion)
    assert result["status"] == "written" and calls == [uid, uid]  # retried by Prefect
    assert tiled_client[uid].metadata["specflow"]["latest"] == result["node"]
    again = flows.end_of_run_annotation(stop, model_uri=mlflow_store.champion,
                                        return_state=True)
    assert again.is_completed() and again.result()["status"] == "skipped"  # idempotent
    bad = flows.end_of_run_annotation({"uid": "not-a-stop-doc"}, return_state=True)
    assert bad.is_failed() and "run_start" in str(bad.result(raise_on_failure=False))


def test_deployment_file_points_at_the_flow(monkeypatch):
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "deploy" / "prefect" / "prefect.yaml").read_text())
    (deployment,) = spec["deployments"]
    monkeypatch.chdir(REPO)
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    assert flow.name == "end-of-run-annotation"
    assert set(deployment["parameters"]) <= set(flow.parameters.properties)
