"""The derived-data node beside a run: ``<run>/specflow/v<version>`` (spec SpecflowPhases)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

CONTAINER = "specflow"
SPEC_NAME = "SpecflowPhases"
SPEC_VERSION = "1"
COMPLETE = "complete"
PARTIAL = "partial"


def specflow_container(run_base: Any, create: bool = False) -> Any | None:
    """The run's ``specflow`` container (created on first use when ``create``)."""
    if CONTAINER in run_base:
        return run_base[CONTAINER]
    if not create:
        return None
    return run_base.create_container(
        CONTAINER, metadata={"description": "specflow phase annotations, one node per model "
                             "version; the run's metadata 'specflow.latest' names the newest"})


def node_state(container: Any | None, key: str) -> tuple[str | None, dict]:
    """(``complete``/``partial``/None, node metadata) of annotation node ``key``."""
    if container is None or key not in container:
        return None, {}
    md = dict(container[key].metadata)
    return (COMPLETE if md.get("status") == COMPLETE else PARTIAL), md


def drop_node(container: Any, key: str) -> None:
    """Delete a half-written node (its arrays and table too)."""
    container.delete_contents(key, recursive=True, external_only=False)


def phase_table(seq_num: np.ndarray, time: np.ndarray, pressure: np.ndarray,
                prediction: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "seq_num": np.asarray(seq_num, dtype=np.int64),
        "time": np.asarray(time, dtype=float),
        "pressure": np.asarray(pressure, dtype=float),
        "label": prediction["label"].to_numpy(dtype=np.int8),
        "p0": prediction["p0"].to_numpy(dtype=np.float32),
        "p1": prediction["p1"].to_numpy(dtype=np.float32),
        "p2": prediction["p2"].to_numpy(dtype=np.float32),
        "ood_score": prediction["ood_score"].to_numpy(dtype=np.float32),
    })


def write_node(container: Any, key: str, table: pd.DataFrame, summary: dict[str, Any]) -> Any:
    """Create node ``key`` as partial, write its arrays and table, then mark it complete.

    Readers (and a retry) can therefore tell a half-written node from a finished one.
    """
    from tiled.structures.core import Spec

    node = container.create_container(
        key, metadata={"status": PARTIAL, "model": summary["model"]},
        specs=[Spec(SPEC_NAME, version=SPEC_VERSION)])
    probs = table[["p0", "p1", "p2"]].to_numpy(dtype=np.float32)
    node.write_array(table["label"].to_numpy(dtype=np.int8), key="label", dims=["curve"],
                     metadata={"flag_values": [0, 1, 2],
                               "flag_meanings": "before during after"})
    node.write_array(probs, key="probabilities", dims=["curve", "phase"],
                     metadata={"phase": ["before", "during", "after"]})
    node.write_array(table["ood_score"].to_numpy(dtype=np.float32), key="ood_score",
                     dims=["curve"], metadata={"meaning": "scaled Mahalanobis distance; >1 is "
                                               "beyond the training set's 99th percentile"})
    node.write_table(table, key="phases")
    node.update_metadata({"status": COMPLETE, "summary": summary}, drop_revision=True)
    return node
