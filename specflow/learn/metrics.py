"""Classification and clustering metrics, and an embedding figure."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats
from sklearn import metrics as skm
from sklearn.cluster import SpectralClustering
from sklearn.manifold import TSNE


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, object]:
    """Weighted precision/recall/F1, macro-F1, recall of "during" (1), accuracy, confusion."""
    labels = [0, 1, 2]
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:  # nothing to score (e.g. every curve of the runs was labelled)
        return {"precision": None, "recall": None, "f1": None, "macro_f1": None,
                "during_recall": None, "accuracy": None,
                "confusion": np.zeros((3, 3), int).tolist(), "n": 0}
    during = y_true == 1
    return {
        "precision": float(skm.precision_score(y_true, y_pred, average="weighted",
                                               zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, average="weighted", zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=np.unique(y_true),
                                       average="macro", zero_division=0)),
        "during_recall": float((y_pred[during] == 1).mean()) if during.any() else None,
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "confusion": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(len(y_true)),
    }


def ambiguity_width(labels: np.ndarray) -> float:
    """Boundary-ambiguity width of one run's labels in acquisition order, as a fraction of its
    curves: what lies between the leading stretch of the first curve's label and the trailing
    stretch of the last curve's label (0 when the run holds one label only).

    This is the supervised comparison's "classification confidence" (1 − width) done
    honestly: it uses **no ground truth**, so it measures how sharp a model's boundary is,
    not whether it is right (a true "during" phase widens it too).
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0 or (labels == labels[0]).all():
        return 0.0
    lead = int(np.argmax(labels != labels[0]))
    trail = int(np.argmax(labels[::-1] != labels[-1]))
    return float(max(n - lead - trail, 0) / n)


def accuracy_outside_boundaries(pred: np.ndarray, truth: np.ndarray,
                                scored: np.ndarray | None = None, margin: int = 2
                                ) -> float | None:
    """Accuracy of one run's labels (acquisition order) on the curves more than ``margin``
    curves away from every change of the true label: what remains once the exact place of
    each boundary, decided by a curve or two, is set aside. None if no curve is left."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    keep = np.ones(len(truth), bool) if scored is None else np.asarray(scored, bool).copy()
    for i in np.flatnonzero(np.diff(truth)) + 1:  # first curve after each true change
        keep[max(i - margin, 0):i + margin] = False
    return float((pred[keep] == truth[keep]).mean()) if keep.any() else None


def paired_difference(a: list[float] | np.ndarray, b: list[float] | np.ndarray,
                      confidence: float = 0.95) -> dict[str, float | int | None]:
    """Mean of a − b over paired units (same runs, seeds and labels) with the half-width of
    its Student-t interval and the interval itself (None where there are < 2 pairs)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    mean, half = mean_interval(d, confidence)
    ok = np.isfinite(half)
    return {"mean": float(mean) if d.size else None, "half_width": float(half) if ok else None,
            "low": float(mean - half) if ok else None, "high": float(mean + half) if ok else None,
            "n": int(d.size)}


def expected_calibration_error(probabilities: np.ndarray, y_true: np.ndarray,
                               n_bins: int = 10) -> float:
    """ECE: |accuracy − confidence| of the top class, averaged over equal-width confidence
    bins weighted by their share of curves."""
    p = np.asarray(probabilities, dtype=float)
    if len(p) == 0:
        return float("nan")
    confidence, pred = p.max(1), p.argmax(1)
    hit = pred == np.asarray(y_true)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        sel = bins == b
        ece += sel.mean() * abs(hit[sel].mean() - confidence[sel].mean())
    return float(ece)


def auroc(scores_negative: np.ndarray, scores_positive: np.ndarray) -> float:
    """Area under the ROC curve of a score meant to be higher for the positives."""
    y = np.r_[np.zeros(len(scores_negative)), np.ones(len(scores_positive))]
    return float(skm.roc_auc_score(y, np.r_[scores_negative, scores_positive]))


def mean_interval(values: list[float] | np.ndarray, confidence: float = 0.95
                  ) -> tuple[float, float]:
    """Mean and half-width of its Student-t confidence interval (NaN-aware)."""

    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(half)


def cluster_scores(
    x: np.ndarray, y_true: np.ndarray, n_clusters: int = 3, seed: int = 0
) -> dict[str, float]:
    """Spectral clustering of x: silhouette, mutual information (raw/normalised), adjusted Rand."""
    n_clusters = max(2, min(n_clusters, len(x) - 1))
    with warnings.catch_warnings():  # "graph is not fully connected": expected for phases
        warnings.simplefilter("ignore", UserWarning)
        pred = SpectralClustering(n_clusters=n_clusters, affinity="nearest_neighbors",
                                  n_neighbors=min(10, len(x) - 1), random_state=seed,
                                  assign_labels="cluster_qr").fit_predict(x)
    sil = skm.silhouette_score(x, pred) if len(np.unique(pred)) > 1 else float("nan")
    return {
        "silhouette": float(sil),
        "mutual_info": float(skm.mutual_info_score(y_true, pred)),
        "nmi": float(skm.normalized_mutual_info_score(y_true, pred)),
        "ari": float(skm.adjusted_rand_score(y_true, pred)),
    }


def embed_2d(x: np.ndarray, seed: int = 0, method: str = "auto") -> tuple[np.ndarray, str]:
    """2-D map of x by UMAP (``auto``: when umap-learn is installed) or t-SNE."""
    if method in {"auto", "umap"}:
        try:
            import umap

            return umap.UMAP(random_state=seed, n_jobs=1).fit_transform(x), "UMAP"
        except ImportError:
            if method == "umap":
                raise

    perplexity = max(2.0, min(30.0, (len(x) - 1) / 3))
    return TSNE(random_state=seed, perplexity=perplexity).fit_transform(x), "t-SNE"


def plot_embedding(
    x: np.ndarray, labels: np.ndarray, path: str | Path, title: str = "", seed: int = 0,
    method: str = "auto",
) -> Path:
    """Scatter of a 2-D map of embeddings coloured by phase label (no pyplot, no backend)."""

    xy, method = embed_2d(x, seed, method)
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="viridis", s=8)
    fig.colorbar(sc, ax=ax, label="label")
    ax.set(title=title or f"{method} of embeddings", xlabel=f"{method} 1", ylabel=f"{method} 2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
