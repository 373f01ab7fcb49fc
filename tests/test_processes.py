"""Child processes that Ctrl-C reaches: what the Ctrl-C tests and the soak start with."""

from __future__ import annotations

import signal
import subprocess
import sys

from specflow.servers.processes import popen_interruptible

REPORT = ("import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, "
          "signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))")


def _child_sees(start) -> str:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job has it
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc = start([sys.executable, "-c", REPORT], stdout=subprocess.PIPE, text=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)
    return proc.communicate(timeout=60)[0].strip()


def test_a_child_handles_ctrl_c_even_when_this_process_ignores_it():
    before = signal.getsignal(signal.SIGINT)
    assert _child_sees(subprocess.Popen) == "False True"  # plain Popen: deaf to Ctrl-C
    assert _child_sees(popen_interruptible) == "True False"
    assert signal.getsignal(signal.SIGINT) is before  # this process's handler is back
