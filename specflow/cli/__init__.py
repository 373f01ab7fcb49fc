"""The ``specflow`` command line: one thin command per library step.

Each module holds the commands of one stage and only parses options and prints; the work
is done by the library (:mod:`specflow.data`, :mod:`specflow.ingest`, :mod:`specflow.learn`,
:mod:`specflow.registry`, :mod:`specflow.annotate`). Shared options: :mod:`.options`.

A command's module (and with it torch, Tiled, MLflow, ...) is imported only when that
command runs or shows its own ``--help``: ``specflow --help`` lists the commands from
:data:`COMMANDS` without importing any of them.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any, NamedTuple

import click
import typer

from specflow.cli.errors import ErrorBoundary

#: seconds tiled's client retries one request before the commands' own retries take over
TILED_RETRY_TIMEOUT_S = 10


class Entry(NamedTuple):
    """Where a command lives: ``specflow.cli.<module>.<function>``, its one-line help (the
    first line of the function's docstring; a test keeps them equal) and its click class."""

    module: str
    function: str
    help: str
    cls: str | None = None


COMMANDS: dict[str, Entry] = {
    "simulate": Entry("data", "simulate", "Simulate DAC pressure runs (pymatgen XRD + "
                      "Birch–Murnaghan EOS) with true labels."),
    "plot": Entry("data", "plot", "Draw the contour map of a run (2θ vs curve or pressure) "
                  "with its labels beside it."),
    "demo": Entry("demo", "demo", "End-to-end demo: embedded Tiled + MLflow, ingest, train, "
                  "promote, annotate, query."),
    "ingest": Entry("ingest", "ingest_files", "Write runs read from files into Tiled as "
                    "Bluesky runs; print a uid per run."),
    "ingest-demo": Entry("ingest", "ingest_demo", "Run simulated diamond-anvil-cell "
                         "compressions and write them to Tiled; print run uids."),
    "integrate": Entry("integrate", "integrate_cmd", "Integrate detector images azimuthally "
                       "(pyFAI) into a spectra file, one curve per frame."),
    "evaluate": Entry("learn", "evaluate_command", "Score a method with few labels: within "
                      "each run, or with --test on unseen runs.", "ManyValuesCommand"),
    "pretrain": Entry("registry", "pretrain_cmd", "Self-supervised pretraining on unlabelled "
                      "curves, tracked in MLflow; prints the run id."),
    "probe": Entry("registry", "probe_cmd", "Linear probe on a pretrained encoder with few "
                   "labels; logs the pyfunc model."),
    "register": Entry("registry", "register_cmd", "Register the model logged by a probe run "
                      "as a new version, tagged with its metrics."),
    "register-encoder": Entry("registry", "register_encoder_cmd", "Register a pretrained "
                              "encoder so probes start from it instead of pretraining."),
    "promote": Entry("registry", "promote_cmd", "Move an alias to a version if it is not "
                     "worse than the holder on the gate set."),
    "pipeline": Entry("registry", "pipeline_cmd", "fit (corpus network, probe or network on "
                      "the labels; SSL methods pretrain first) -> register -> promote, in one "
                      "tracked run."),
    "annotate": Entry("annotate", "annotate_cmd", "Label runs in Tiled with the registered "
                      "phase model and write the labels back."),
    "watch": Entry("annotate", "watch_cmd", "Follow the catalog: annotate runs as they "
                   "finish, re-annotate when the alias moves."),
    "live": Entry("annotate", "live_cmd", "Label curves live as a RunEngine in another "
                  "process publishes them (0MQ or Kafka)."),
    "phases": Entry("query", "phases_cmd", "List annotated runs with their phases and "
                    "transition pressures."),
    "label": Entry("annotate", "label_cmd", "Label runs from files with the registered "
                   "model; write per-curve phases, transition pressures and curves to take "
                   "away."),
    "export": Entry("annotate", "export_cmd", "Write the labels already in Tiled to take "
                    "away: per-curve phases, transition pressures, NeXus, curves."),
    "suggest-labels": Entry("annotate", "suggest_cmd", "Curves to label next: where the "
                            "registered model is least sure of the phase."),
    "library": Entry("identify", "library_app", "Build or extend the reference library of "
                     "named phases."),
    "train-identifier": Entry("identify", "train_identifier", "Train the RegNet1D + AdaCos "
                              "identifier on physics-augmented library patterns."),
    "identify": Entry("identify", "identify", "Name the phases of a run: top candidates "
                      "before and after the transition."),
    "admin": Entry("admin", "admin_app", "Operate a deployment: database indexes for "
                   "catalog searches."),
}


def load_command(name: str) -> click.Command:
    """The full click command ``name`` (imports its module); a Typer app becomes a group."""
    entry = COMMANDS[name]
    module = import_module(f"specflow.cli.{entry.module}")
    target = getattr(module, entry.function)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    one = typer.Typer(add_completion=False)
    cls = getattr(module, entry.cls) if entry.cls else None
    one.command(name, cls=cls)(target)
    return typer.main.get_group(one).commands[name]


class LazyCommand(click.Command):
    """A listed command that loads the real one as soon as it is invoked."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        return load_command(self.name).make_context(info_name, args, parent=parent, **extra)


class LazyGroup(ErrorBoundary):
    """The root group: commands listed from :data:`COMMANDS`, each loaded when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return LazyCommand(cmd_name, help=COMMANDS[cmd_name].help)


app = typer.Typer(
    help="specflow: phase labels for streams of X-ray diffraction curves.",
    no_args_is_help=True,
    add_completion=False,
    cls=LazyGroup,
)


@app.callback()
def main(ctx: typer.Context, debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of any error.")) -> None:
    """specflow: phase labels for streams of X-ray diffraction curves."""
    ctx.meta["specflow.debug"] = debug
    # tiled's client retries a request that finds no server for 45 s by default; the
    # commands retry on top of that and stop a batch when the server is gone, so they ask
    # the client for less (a command of this process imports tiled after this line)
    os.environ.setdefault("TILED_RETRY_TIMEOUT", str(TILED_RETRY_TIMEOUT_S))


__all__ = ["COMMANDS", "app", "load_command"]
