"""Process plumbing: child processes that do not outlive their parent, and signals that ask a run to stop."""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to send this process SIGTERM when ``parent_pid`` (its parent) ends, however it ends.

    Called first thing in a worker process (a rollout worker, a sweep's training process): without it a
    worker busy with a long job keeps running after its parent was killed, and holds a core for nothing.
    Linux only; elsewhere a no-op. A parent that already died before the call ends this process at once.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return
    if os.getppid() != parent_pid:
        os._exit(1)


@contextlib.contextmanager
def stop_on_signals(stop):
    """While inside, Ctrl-C / SIGTERM ask ``stop`` (a :class:`algos.rollout.StopFlag`) to end the run after
    the current env step, so it saves a checkpoint; a second Ctrl-C aborts at once (KeyboardInterrupt).
    Outside the main thread signals cannot be caught, and this does nothing."""
    interrupts = []  # Ctrl-Cs seen here: a stop requested by other means (a sweep's cancel) is not a first one

    def handler(signum, _frame):
        if signum == signal.SIGINT:
            if interrupts:
                raise KeyboardInterrupt
            interrupts.append(signum)
        stop.request(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def sigterm_as_ctrl_c():
    """While inside, SIGTERM raises KeyboardInterrupt, so ``kill PID`` (or a batch scheduler's time limit)
    stops a process by the same graceful path as Ctrl-C. Yields a list that holds ``"SIGTERM"`` once one
    arrived, for the exit code (143 rather than 130). Outside the main thread this does nothing.

    A process started in the background by a non-interactive shell (``nohup ... &``) ignores SIGINT from
    birth, so SIGTERM is the signal that reaches it.
    """
    received = []

    def handler(_signum, _frame):
        received.append("SIGTERM")
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)
