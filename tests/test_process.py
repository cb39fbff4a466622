"""utils.process: worker processes end with the process that started them (die_with_parent); Ctrl-C asks a
run to stop, a second one aborts (stop_on_signals); SIGTERM can stop a process as Ctrl-C does
(sigterm_as_ctrl_c)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
# A parent that starts a busy child (sleeping, reading nothing that would tell it the parent is gone), prints
# the child's pid and kills itself; the child asks to die with its parent only if told to.
PARENT = """
import multiprocessing, os, signal, sys, time
sys.path.insert(0, {project!r})
from utils.process import die_with_parent

def child(parent_pid, ask):
    if ask:
        die_with_parent(parent_pid)
    time.sleep(30)

if __name__ == "__main__":
    process = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(), {ask}))
    process.start()
    time.sleep(2.0)  # let the child reach its sleep
    print(process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def child_alive_after_parent_is_killed(folder: Path, ask: bool) -> bool:
    script = folder / f"parent_{ask}.py"  # a file, not -c: the spawned child re-imports it to find its target
    script.write_text(PARENT.format(project=str(PROJECT), ask=ask))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())  # not read to the end: the child holds the pipe open while it lives
    parent.wait(timeout=30)
    parent.stdout.close()
    try:
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            time.sleep(0.1)
        return True
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_that_asked_ends_when_its_parent_is_killed_and_one_that_did_not_lives_on(tmp_path):
    assert not child_alive_after_parent_is_killed(tmp_path, ask=True)
    assert child_alive_after_parent_is_killed(tmp_path, ask=False), "the control: without it the child survives"


def test_stop_on_signals_counts_its_own_ctrl_c_only():
    from algos.rollout import StopFlag
    from utils.process import stop_on_signals
    stop = StopFlag()
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite was started in the background (cmd &)
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signal_name == "SIGINT", "the first Ctrl-C asks the run to stop"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second aborts at once
    cancelled = StopFlag()
    with stop_on_signals(cancelled):
        cancelled.request("SIGINT")  # e.g. a sweep's cancel event, seen by a thread before the signal handler ran
        os.kill(os.getpid(), signal.SIGINT)
        assert cancelled.requested, "a stop requested elsewhere does not make this Ctrl-C a second one"
    assert signal.getsignal(signal.SIGINT) is before, "the previous handler is restored"


def test_sigterm_as_ctrl_c_raises_keyboard_interrupt_and_says_so():
    from utils.process import sigterm_as_ctrl_c
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_ctrl_c() as received:
            assert received == [], "nothing received yet"
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs between bytecodes; never reached
    assert received == ["SIGTERM"], "the caller can tell SIGTERM (exit 143) from Ctrl-C (130)"
    assert signal.getsignal(signal.SIGTERM) is before, "the previous handler is restored"
