"""The one way the harness stops a child process.

A process started with ``start_new_session=True`` leads a process group of
its own (gunicorn and its workers, Celery and its pool, a server and its
helpers); ``stop`` can signal that whole group. A process that shares the
test's own group is only ever signalled by itself, so that the test run is
never hit.
"""

import contextlib
import os
import signal
import subprocess
import time


def leads_its_group(process: subprocess.Popen) -> bool:
    with contextlib.suppress(ProcessLookupError):
        return os.getpgid(process.pid) == process.pid
    return False


def _signal(process: subprocess.Popen, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group and leads_its_group(process):
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)


def _wait_for_group_to_go(pgid: int, timeout: float) -> None:
    """Waits until no process of the group is left (best effort: a zombie
    nobody reaps would count as left, so the wait is bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30, group: bool = True) -> int:
    """Sends sig to the process (and to its group, if group and it leads one),
    waits up to timeout for it to exit, then SIGKILLs it and everything in its
    group; returns its exit status.

    group=False sends sig to the process alone, as `docker stop` does to a
    container's main process; the SIGKILL after the timeout still takes the
    whole group, so that nothing is left behind.
    """
    if process.poll() is None:
        leader = leads_its_group(process)
        _signal(process, sig, group)
        killed = sig == signal.SIGKILL
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL, group=True)
            process.wait(10)
            killed = True
        if leader and killed:
            # Killed with no chance to clean up: wait until its children are
            # gone too, so that nothing they did is still happening after.
            _wait_for_group_to_go(process.pid, timeout=10)
    return process.returncode


def stop_all(processes, timeout: float = 10) -> None:
    """Stops every process still running, each with SIGTERM to its group."""
    for process in processes:
        stop(process, timeout=timeout)
