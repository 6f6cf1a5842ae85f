"""Stopping what a test started, and nothing else.

``ray stop`` stops every Ray on the machine, including the embedded Ray of a test module
running in the other pytest-xdist worker; the tests start their clusters and drivers in a
session of their own instead and kill exactly that session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def kill_session(process: subprocess.Popen) -> None:
    """Kills ``process`` (started with ``start_new_session=True``) and everything still in its
    session, at once: as ``ray stop --force`` would, for this session's processes only (SIGTERM
    first left the test waiting 30 s on daemons that outlive it)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
    # Ray's own daemons may have left the group; anything still in this session goes too.
    for _ in range(50):
        survivors = _members(process.pid)
        if not survivors:
            return
        _kill(survivors)
        time.sleep(0.2)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _members(session: int) -> list[int]:
    return [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _session(int(pid)) == session]


def _session(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[3])  # session id
    except (OSError, IndexError, ValueError):
        return None
