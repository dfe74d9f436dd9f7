"""How many Beam worker processes `--direct_num_workers=0` means: the CPUs this process may use.

Beam 2.61 reads 0 as `multiprocessing.cpu_count()`, the host's CPUs, ignoring CPU affinity and
container CPU limits: a pod limited to 2 CPUs on a 64-core node would start 64 workers, each
loading TensorFlow. The local runner and the Kubeflow entrypoint resolve 0 with this instead.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

AUTO = "--direct_num_workers=0"
# cgroup v2, then v1: a container's CPU limit (quota per period).
CGROUP_V2_CPU_MAX = "/sys/fs/cgroup/cpu.max"
CGROUP_V1_QUOTA = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def _quota_cpus(cgroup_v2: str, cgroup_v1: tuple[str, str]) -> float | None:
    """CPUs allowed by a cgroup CPU quota; None without one."""
    try:
        quota, period = Path(cgroup_v2).read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota, period = (int(Path(path).read_text()) for path in cgroup_v1)
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cpus(cgroup_v2: str = CGROUP_V2_CPU_MAX,
                cgroup_v1: tuple[str, str] = CGROUP_V1_QUOTA) -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0))
    quota = _quota_cpus(cgroup_v2, cgroup_v1)
    return cpus if quota is None else max(1, min(cpus, math.ceil(quota)))


def resolve_worker_count(beam_args: list[str]) -> list[str]:
    """The Beam args with `--direct_num_workers=0` replaced by the usable CPUs."""
    return [f"--direct_num_workers={usable_cpus()}" if arg == AUTO else arg
            for arg in beam_args]
