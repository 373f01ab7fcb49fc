"""The derived-data nodes beside a run: ``<run>/specflow/<model>-v<version>[-r<n>]``.

One node per model name, version and (forced) revision, spec ``SpecflowPhases``. Nodes are
never rewritten in place: a node is created ``partial`` under a writer's lease, filled, then
marked ``complete``; a forced re-annotation writes the next revision beside it. Only a
``partial`` node whose lease has expired (its writer died) is ever deleted.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from tiled.structures.core import Spec

CONTAINER = "specflow"
SPEC_NAME = "SpecflowPhases"
SPEC_VERSION = "2"
COMPLETE = "complete"
PARTIAL = "partial"
LEASE_SECONDS = 300.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_KEY = re.compile(r"^(?P<base>.+-v(?P<version>\d+))(?:-r(?P<revision>\d+))?$")


def node_base(model_name: str, version: str | int) -> str:
    """``<model>-v<version>``, the model name reduced to characters safe in a Tiled key."""
    return f"{_UNSAFE.sub('_', model_name).strip('_') or 'model'}-v{int(version)}"


def node_key(model_name: str, version: str | int, revision: int = 1) -> str:
    """Key of one annotation node; revisions after the first get ``-r<n>``."""
    base = node_base(model_name, version)
    return base if revision <= 1 else f"{base}-r{revision}"


@dataclass(frozen=True)
class Writer:
    """Who is writing: recorded in a partial node so other annotators leave it alone."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    lease_seconds: float = LEASE_SECONDS

    def lease(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {"id": self.id, "host": self.host, "pid": self.pid,
                "since": now.isoformat(timespec="seconds"),
                "expires": (now + timedelta(seconds=self.lease_seconds)).isoformat(
                    timespec="seconds")}


def written_by(metadata: Any, me: Writer) -> bool:
    """Whether a node's metadata names ``me`` as its writer."""
    return (metadata.get("writer") or {}).get("id") == me.id


@dataclass(frozen=True)
class Node:
    """An annotation node of one model version, as found in a run's container."""

    key: str
    revision: int
    metadata: dict[str, Any]

    @property
    def complete(self) -> bool:
        return self.metadata.get("status") == COMPLETE

    def leased_by_other(self, me: Writer, now: datetime | None = None) -> bool:
        """A partial node another live writer is still filling (its lease not expired)."""
        lease = self.metadata.get("writer") or {}
        if self.complete or not lease or lease.get("id") == me.id:
            return False
        if lease.get("host") == me.host and not _pid_alive(lease.get("pid")):
            return False  # its writer ran on this machine and is gone (crash, Ctrl-C)
        try:
            expires = datetime.fromisoformat(lease["expires"])
        except (KeyError, TypeError, ValueError):
            return False
        return expires > (now or datetime.now(UTC))

    def written_by(self, me: Writer) -> bool:
        return written_by(self.metadata, me)

    def describe_writer(self) -> str:
        lease = self.metadata.get("writer") or {}
        return f"{lease.get('host')} pid {lease.get('pid')} since {lease.get('since')}"


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def specflow_container(run_base: Any, create: bool = False) -> Any | None:
    """The run's ``specflow`` container (created on first use when ``create``)."""
    try:
        return run_base[CONTAINER]  # one request, found or not
    except KeyError:
        if not create:
            return None
    try:
        return run_base.create_container(
            CONTAINER, metadata={"description": "specflow phase annotations, one node per "
                                 "model, version and revision; the run's metadata "
                                 "'specflow.latest' names the published one"})
    except Exception as exc:  # another annotator created it first
        if status_code(exc) == 409:
            return run_base[CONTAINER]
        raise


def model_nodes(container: Any | None, model_name: str, version: str | int
                ) -> tuple[list[Node], set[int]]:
    """This model version's nodes in ``container`` (oldest revision first) and the
    revisions any node under the same key base holds.

    A node whose metadata names another model (two names that reduce to the same key) is
    not this model's and is left out, but its revision is still taken.
    """
    if container is None:
        return [], set()
    base = node_base(model_name, version)
    found: list[Node] = []
    taken: set[int] = set()
    for key, child in container.items():
        match = _KEY.match(key)
        if match is None or match["base"] != base:
            continue
        revision = int(match["revision"] or 1)
        taken.add(revision)
        md = dict(child.metadata)
        if md.get("model_name", model_name) != model_name:
            continue
        found.append(Node(key, revision, md))
    return sorted(found, key=lambda n: n.revision), taken


def still_abandoned(container: Any, node: Node, me: Writer) -> bool:
    """Re-read ``node`` just before deleting it: still partial and not leased by a live
    writer (ours, expired, or its writer gone)."""
    try:
        md = dict(container[node.key].metadata)
    except KeyError:
        return False
    fresh = Node(node.key, node.revision, md)
    return not fresh.complete and not fresh.leased_by_other(me)


def status_code(exc: BaseException) -> int | None:
    """HTTP status of a Tiled client error, else None."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def drop_node(container: Any, key: str) -> None:
    """Delete an abandoned partial node (its arrays and table too)."""
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


def create_node(container: Any, key: str, summary: dict[str, Any], me: Writer) -> Any:
    """Create node ``key`` as partial under ``me``'s lease (409 if someone was first)."""

    model = summary["model"]
    return container.create_container(
        key, metadata={"status": PARTIAL, "model": model, "model_name": model["name"],
                       "writer": me.lease()},
        specs=[Spec(SPEC_NAME, version=SPEC_VERSION)])


def fill_node(node: Any, table: pd.DataFrame, summary: dict[str, Any]) -> Any:
    """Write the arrays and the table into a partial node, then mark it complete.

    Readers (and a retry) can therefore tell a half-written node from a finished one.
    """
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
