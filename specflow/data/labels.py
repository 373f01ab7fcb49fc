"""Phase labels of simulated curves: 0 before, 1 during, 2 after the transition, from the
high-pressure phase fraction (see also :func:`specflow.data.observer.visible_labels`)."""

from __future__ import annotations

import numpy as np

LABEL_THRESHOLD = 0.05  # phase fraction below it: before (0); above 1 - it: after (2)


def labels_from_fraction(fraction: np.ndarray, threshold: float = LABEL_THRESHOLD) -> np.ndarray:
    """0 (before: fraction < threshold), 2 (after: > 1 - threshold), otherwise 1 (during)."""
    fraction = np.asarray(fraction)
    labels = np.ones(fraction.shape, dtype=np.int8)
    labels[fraction < threshold] = 0
    labels[fraction > 1 - threshold] = 2
    return labels
