"""Child processes that a Ctrl-C reaches, however this process was started."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def popen_interruptible(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` whose child handles SIGINT (Ctrl-C) as if started from a terminal.

    A child inherits an ignored SIGINT (a job a non-interactive shell puts in the background
    has one, and libraries set one) and a blocked one (the signal mask); either way a SIGINT
    sent to it would do nothing. For the moment of the start, this process gets Python's
    handler, which ``exec`` resets to the default, and SIGINT unblocked. Call it from the
    main thread.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        return subprocess.Popen(args, **kwargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)
