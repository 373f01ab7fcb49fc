"""deploy/: every service command of compose.yml parses with the real CLI it names, the
secrets it needs are in .env.example, and the PostgreSQL Tiled config serves for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import typer
import yaml
from conftest import free_port

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "deploy" / "compose.yml"
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def cli_of(program: str) -> Any:
    """The click command behind a console script of this environment."""
    if program == "specflow":
        from specflow.cli import app
        return typer.main.get_command(app)
    if program == "tiled":
        from tiled.commandline.main import cli_app
        return typer.main.get_command(cli_app)
    if program == "mlflow":
        from mlflow.cli import cli
        return cli
    if program == "prefect":
        from prefect.cli._app import _app  # cyclopts
        return _app
    if program == "dask":
        from distributed.cli import dask_scheduler, dask_worker
        return click.Group("dask", commands={"scheduler": dask_scheduler.main,
                                             "worker": dask_worker.main})
    raise AssertionError(f"compose.yml runs {program!r}, which this test does not know")


def parse(command: Any, args: list[str], name: str) -> Any:
    """Parse ``args`` down to the leaf command as its CLI would, without running it (click
    and typer: a context; cyclopts: the bound arguments)."""
    if hasattr(command, "parse_args") and not hasattr(command, "make_context"):  # cyclopts
        import types

        import prefect.cli.worker  # noqa: F401 - registers the worker commands
        leaf, bound, _ = command.parse_args(list(args), exit_on_error=False,
                                            print_error=False)
        return types.SimpleNamespace(args=[], command=types.SimpleNamespace(
            name=leaf.__name__), params=bound.arguments)
    ctx = command.make_context(name, list(args))
    while hasattr(ctx.command, "resolve_command"):  # a group (click's or typer's own)
        pending = [*getattr(ctx, "_protected_args", []), *ctx.args]
        sub_name, sub, rest = ctx.command.resolve_command(ctx, pending)
        ctx = sub.make_context(sub_name, rest, parent=ctx)
    return ctx


def substituted(value: str) -> str:
    """``${VAR}``/``${VAR:?msg}``/``${VAR:-default}`` replaced by a stand-in value."""
    return VARIABLE.sub(lambda m: f"x{m.group(1).lower()}", value)


def test_compose_service_commands_parse_with_the_real_clis(monkeypatch):
    services = compose()["services"]
    checked = []
    for name, service in services.items():
        if service.get("image") != "specflow:latest" or "command" not in service:
            continue
        program, *args = [substituted(a) for a in service["command"]]
        env = service.get("environment") or {}
        for key, value in env.items():
            monkeypatch.setenv(key, substituted(str(value)))
        ctx = parse(cli_of(program), args, program)
        assert ctx.args == [], f"{name}: unknown arguments {ctx.args}"
        checked.append(f"{program} {ctx.command.name}")
        for key in env:
            monkeypatch.delenv(key)
    assert sorted(checked) == ["dask scheduler", "dask worker", "mlflow server",
                               "prefect start", "specflow watch", "tiled config"]
    assert services["tiled"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (REPO / "deploy" / "Dockerfile").exists()
    with pytest.raises(Exception, match="No such option"):  # the check can fail
        parse(cli_of("specflow"), ["watch", "--no-such-option"], "specflow")


def test_compose_secrets_are_listed_in_the_env_example():
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    example = {line.split("=", 1)[0] for line in
               (REPO / "deploy" / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert required and required <= example
    init = (REPO / "deploy" / "postgres" / "init.sql").read_text()
    for database in ("tiled", "tiled_tables", "mlflow"):
        assert f"CREATE DATABASE {database};" in init


@pytest.mark.slow
@pytest.mark.integration
def test_postgres_tiled_config_serves_a_writable_catalog(postgres, tmp_path):
    """deploy/tiled/config-postgres.yml, as the tiled service runs it, on real PostgreSQL."""
    import numpy as np
    from tiled.client import from_uri
    from tiled.client.container import Container

    catalog = postgres.create_database("deploy_tiled")
    tables = postgres.create_database("deploy_tables")
    (tmp_path / "data").mkdir()
    port = free_port()
    env = {**os.environ, "TILED_SINGLE_USER_API_KEY": "deploykey", "SPECFLOW_DATA": str(tmp_path),
           "SPECFLOW_TILED_CATALOG": catalog, "SPECFLOW_TILED_TABLES": tables}
    log = open(tmp_path / "tiled.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "tiled", "serve", "config",
         str(REPO / "deploy" / "tiled" / "config-postgres.yml"), "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError((tmp_path / "tiled.log").read_text()[-3000:])
            time.sleep(0.5)
        client = from_uri(f"http://127.0.0.1:{port}", api_key="deploykey")
        node = client.create_container("deploy-check", metadata={"pressure": 12.5})
        node.write_array(np.arange(5.0), key="x")
        fresh = from_uri(f"http://127.0.0.1:{port}", api_key="deploykey")
        assert type(fresh).__name__ == "CatalogOfBlueskyRuns"  # the root spec took effect
        read = Container.__getitem__(fresh, "deploy-check")["x"].read()  # by key, not uid
        assert np.array_equal(read, np.arange(5.0))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "deploy-check" in postgres.sql("deploy_tiled", "SELECT key FROM nodes")
