"""Where torch computes: ``"auto"`` (CUDA when available, else CPU) or a torch device name."""

from __future__ import annotations

import torch


def check_device(device: object) -> str:
    """``device`` as a plain string if torch understands it (``auto``, ``cpu``, ``cuda``,
    ``cuda:1``, ``mps``, ...), else ``ValueError`` naming it; no GPU is needed to check."""
    name = str(device)
    if name == "auto":
        return name
    try:
        torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    return name


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else as torch names it."""
    if check_device(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
