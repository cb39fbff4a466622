"""Child processes that do not outlive the process that started them."""
from __future__ import annotations

import ctypes
import os
import signal
import sys

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
