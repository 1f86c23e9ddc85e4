"""Ray is started once per test session, with 2 CPUs, for the Ray Data and Ray Serve tests."""

import pytest


@pytest.fixture(scope="session")
def local_ray():
    ray = pytest.importorskip("ray")
    # address="local": a new cluster of its own, never one that `ray start` elsewhere left in /tmp/ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()
