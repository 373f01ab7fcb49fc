"""The derived-data nodes beside a run: ``<run>/specflow/<model>-v<version>[-r<n>]``.

One node per model name, version and (forced) revision, spec ``SpecflowPhases``: since
spec version 3 a single table (seq_num, time, pressure, label, p0, p1, p2, ood_score),
written in three requests (create with its data's structure, write the data, mark it
complete). Version 2 nodes (a container of three arrays and that table) stay readable
(:func:`read_node`). Nodes are never rewritten in place: a node is created ``partial``
under a writer's lease, filled, then marked ``complete``; a forced re-annotation writes the
next revision beside it. Only a ``partial`` node whose lease has expired (its writer died)
is ever deleted.
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
import xarray as xr
from tiled.structures.core import Spec

CONTAINER = "specflow"
SPEC_NAME = "SpecflowPhases"
SPEC_VERSION = "3"  # 3: one table node; 2: container of arrays + table
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
    """Who is writing: recorded in a partial node so other annotators leave it alone.

    ``id`` is one process's (the lease); ``call`` names a whole bulk call whose runs may be
    retried in other processes (Dask workers): it lets a retry recognise a node that call
    already *completed*, never take over a partial one another live process is filling.
    """

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    lease_seconds: float = LEASE_SECONDS
    call: str | None = None

    def lease(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {"id": self.id, "call": self.call, "host": self.host, "pid": self.pid,
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

    def finished_by_call(self, me: Writer) -> bool:
        """Complete, and written by ``me`` or by another process of ``me``'s call."""
        lease = self.metadata.get("writer") or {}
        return self.complete and (lease.get("id") == me.id or (
            me.call is not None and lease.get("call") == me.call))

    def describe_writer(self) -> str:
        lease = self.metadata.get("writer") or {}
        return f"{lease.get('host')} pid {lease.get('pid')} since {lease.get('since')}"


def _pid_alive(pid: Any) -> bool:
    """A process ``pid`` runs on this host. A killed writer its parent has not reaped yet
    (a zombie: a Dask worker SIGKILLed, its nanny still busy) is dead."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return not _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """``pid`` has exited and waits for its parent (Linux ``/proc``; elsewhere False)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def create_specflow_container(run_base: Any) -> Any:
    """Create the run's ``specflow`` container (one request; if another annotator was
    first, Tiled answers 409 and theirs is used)."""
    try:
        return run_base.create_container(
            CONTAINER, metadata={"description": "specflow phase annotations, one node per "
                                 "model, version and revision; the run's metadata "
                                 "'specflow.latest' names the published one"})
    except Exception as exc:
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
    """Delete an abandoned partial node (its arrays and table too). A node whose rows were
    never written makes Tiled's delete fail after the catalog entry is gone (the client's
    retry then gets 404): that counts as deleted."""
    try:
        container.delete_contents(key, recursive=True, external_only=False)
    except Exception as exc:
        if status_code(exc) != 404:
            raise


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


#: What each column of the phase table means (the node's ``columns`` metadata).
COLUMNS = {
    "seq_num": "event sequence number of the curve in the run's stream",
    "time": "event time, s since the epoch",
    "pressure": "pressure readback, GPa",
    "label": "0 before, 1 during, 2 after the transition (decoded along the run)",
    "p0": "calibrated probability of 'before'",
    "p1": "calibrated probability of 'during'",
    "p2": "calibrated probability of 'after'",
    "ood_score": "scaled Mahalanobis distance; >1 is beyond the training set's 99th percentile",
}


def create_node(container: Any, key: str, table: pd.DataFrame, summary: dict[str, Any],
                me: Writer) -> Any:
    """Create node ``key`` (the phase table) as partial under ``me``'s lease and write its
    rows: two requests. Raises Tiled's 409 if someone else created the key first."""

    model = summary["model"]
    return container.write_table(
        table, key=key,
        metadata={"status": PARTIAL, "model": model, "model_name": model["name"],
                  "writer": me.lease(), "columns": COLUMNS,
                  "flag_values": [0, 1, 2], "flag_meanings": "before during after"},
        specs=[Spec(SPEC_NAME, version=SPEC_VERSION)])


def fill_node(node: Any, table: pd.DataFrame) -> Any:
    """Write the rows of a node whose creation succeeded but whose data may be missing
    (our own create answered 409 after a lost response)."""
    node.write(table)
    return node


def complete_node(node: Any, summary: dict[str, Any]) -> Any:
    """Mark a written node complete and attach the run summary (one request).

    Readers (and a retry) can therefore tell a half-written node from a finished one.
    """
    node.update_metadata({"status": COMPLETE, "summary": summary}, drop_revision=True)
    return node


def read_node(node: Any) -> pd.DataFrame:
    """The phase table of an annotation node, either layout (spec version 3 or 2)."""
    if node.structure_family == "table":
        return node.read()
    return node["phases"].read()  # version 2: container with the same table inside


def read_labels(run: Any, key: str | None = None) -> xr.Dataset:
    """A run's phase labels from Tiled as xarray: ``label``, ``probabilities`` (curve,
    phase), ``ood_score`` and ``seq_num`` over ``curve``, with ``pressure``/``time`` coords.

    ``key`` names the node (default: the published one, ``specflow.latest``). Raises
    KeyError when the run has no such annotation.
    """
    key = key or (run.metadata.get("specflow") or {}).get("latest")
    if not key:
        raise KeyError("the run has no published specflow annotation; pass key=")
    node = run.base[CONTAINER][key]
    if node.metadata.get("status") != COMPLETE:
        raise KeyError(f"annotation node {key!r} is not complete (still being written, or "
                       "abandoned)")
    table = read_node(node)
    probs = table[["p0", "p1", "p2"]].to_numpy(dtype=np.float32)
    return xr.Dataset(
        {"label": ("curve", table["label"].to_numpy(dtype=np.int8)),
         "probabilities": (("curve", "phase"), probs),
         "ood_score": ("curve", table["ood_score"].to_numpy(dtype=np.float32)),
         "seq_num": ("curve", table["seq_num"].to_numpy())},
        coords={"pressure": ("curve", table["pressure"].to_numpy(dtype=float)),
                "time": ("curve", table["time"].to_numpy(dtype=float)),
                "phase": ["before", "during", "after"]},
        attrs={"node": key})
