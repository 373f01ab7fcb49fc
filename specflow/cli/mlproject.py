"""Entry points of ``mlflow_projects/MLproject``: each runs the ``specflow`` command of the
same name with the parameters MLflow passes.

MLflow passes every parameter as text, an empty one meaning "not given": empty options are
dropped, and list options (``--data``, ``--run``, ``--query``, ``--eval-data``) are split on
commas into repeated options. Options are not declared here: the command's own (typer)
definition parses and checks them, so ``mlflow run`` and the CLI cannot disagree.
"""

from __future__ import annotations

import sys

import click

from specflow.cli import app, load_command

STEPS = ("pretrain", "probe", "register", "promote", "pipeline")


def command_argv(step: str, argv: list[str]) -> list[str]:
    """``[step, --opt value, ...]`` for the specflow CLI from MLproject-style ``argv``."""
    if step not in STEPS:
        raise click.UsageError(f"unknown step {step!r}: choose from {', '.join(STEPS)}")
    command = load_command(step)
    multiple = {opt for p in command.params if getattr(p, "multiple", False) for opt in p.opts}
    out = [step]
    if len(argv) % 2:
        raise click.UsageError(f"options must come as --name value pairs: {argv}")
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        if not value:
            continue  # MLflow's empty default: "not given"
        values = [v for v in value.split(",") if v] if flag in multiple else [value]
        for v in values:
            out += [flag, v]
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m specflow.cli.mlproject STEP --opt value ...`` (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit(f"usage: python -m specflow.cli.mlproject {{{','.join(STEPS)}}} "
                         "--option value ...")
    app(command_argv(args[0], args[1:]), prog_name="specflow")


if __name__ == "__main__":
    main()
