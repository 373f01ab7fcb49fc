"""Entry points of ``mlflow_projects/MLproject``: MLflow passes every parameter as text,
empty meaning "not given"; this maps them onto the CLI steps in :mod:`.commands`."""

from __future__ import annotations

import sys
from pathlib import Path

from specflow.learn.names import DEFAULT_METHOD
from specflow.registry import commands


def _opt(value: str) -> str | None:
    return value or None


def _csv(value: str) -> list[str] | None:
    """An MLproject list parameter: comma-separated (a path containing a comma cannot be
    passed this way; use the ``specflow`` CLI, which takes repeated options)."""
    return [v for v in value.split(",") if v] if value else None


def _fraction(value: str) -> float | None:
    """``label_fraction``: empty means every given label."""
    return float(value) if value else None


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m specflow.registry.project")
    parser.add_argument("step", choices=["pretrain", "probe", "register", "promote", "pipeline"])
    for name in ("data", "tiled-uri", "runs", "query", "method", "epochs", "preset", "device",
                 "seed", "pretrain-run", "probe-run", "label-fraction", "holdout", "name", "alias",
                 "version", "eval-data"):
        parser.add_argument(f"--{name}", default="")
    a = parser.parse_args(argv)
    workdir = Path("work")
    source = dict(data=_csv(a.data), tiled_uri=_opt(a.tiled_uri), api_key=None,
                  run=_csv(a.runs), query=_csv(a.query))
    seed = int(float(a.seed or 0))
    default = "rrmoco" if a.step == "pretrain" else DEFAULT_METHOD
    train = dict(method=a.method or default, epochs=int(a.epochs) if a.epochs else None,
                 preset=a.preset or "quick", device=a.device or "auto", seed=seed)
    eval_data = [Path(p) for p in _csv(a.eval_data) or []] or None
    if a.step == "pretrain":
        commands.pretrain_cmd(**source, **train, workdir=workdir)
    elif a.step == "probe":
        commands.probe_cmd(pretrain_run=a.pretrain_run, **source,
                           label_fraction=_fraction(a.label_fraction),
                           holdout=float(a.holdout or 0), seed=seed, workdir=workdir)
    elif a.step == "register":
        commands.register_cmd(probe_run=a.probe_run, name=a.name or "specflow-phase",
                              workdir=workdir)
    elif a.step == "promote":
        commands.promote_cmd(version=int(a.version), name=a.name or "specflow-phase",
                             alias=a.alias or "champion", eval_data=eval_data, tolerance=0.0,
                             workdir=workdir)
    else:
        commands.pipeline_cmd(**source, **train, label_fraction=_fraction(a.label_fraction),
                              holdout=float(a.holdout or 0), name=a.name or "specflow-phase",
                              alias=a.alias or "champion", eval_data=eval_data,
                              workdir=workdir)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as err:  # a clear one-line error for `mlflow run` logs
        print(f"specflow: {type(err).__name__}: {err}", file=sys.stderr)
        raise
