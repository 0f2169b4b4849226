"""The CPUs this process may use.

Imported by gunicorn.conf.py before Django is set up, so it depends on
nothing but the standard library.
"""

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def available_cpus(cgroup=CGROUP):
    """CPUs this process may actually use: its affinity and cgroup CPU quota.

    os.cpu_count() counts the host's CPUs, which oversizes worker pools in a
    container limited to, say, two of a host's sixty-four.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return cpus


def cgroup_cpu_quota(cgroup=CGROUP):
    """The cgroup's CPU quota as a number of CPUs, or None when there is none."""
    try:  # cgroup v2: "max 100000" or "150000 100000"
        quota, period = (cgroup / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1: a quota of -1 means none
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
