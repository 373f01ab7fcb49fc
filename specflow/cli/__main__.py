"""``python -m specflow.cli``: the ``specflow`` command without its console script."""

from specflow.cli import app

app(prog_name="specflow")
