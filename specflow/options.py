"""Choices and checks shared by the CLI's options (one definition each)."""

from __future__ import annotations

from enum import StrEnum

import typer

from specflow.learn.names import LABEL_STRATEGIES, METHODS, SSL_METHODS

Method = StrEnum("Method", {m: m for m in METHODS})  # type: ignore[misc]
SSLMethod = StrEnum("SSLMethod", {m: m for m in SSL_METHODS})  # type: ignore[misc]
LabelStrategy = StrEnum("LabelStrategy", {s: s for s in LABEL_STRATEGIES})  # type: ignore[misc]
TrainPreset = StrEnum("TrainPreset", {"quick": "quick", "paper": "paper"})  # type: ignore[misc]


def fraction(value: float | None) -> float | None:
    """Typer callback: a fraction in (0, 1]."""
    if value is not None and not 0 < value <= 1:
        raise typer.BadParameter(f"{value} is not in (0, 1]: give a fraction such as 0.03")
    return value
