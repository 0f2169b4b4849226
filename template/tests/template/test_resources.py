import os

import pytest

from servicekit.resources import available_cpus, cgroup_cpu_quota

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({}, None),
    ],
)
def test_cgroup_quota_v1_and_v2(tmp_path, files, quota):
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(content)

    assert cgroup_cpu_quota(tmp_path) == quota


def test_a_quota_caps_the_cpus_and_rounds_up(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 1

    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == AFFINITY
