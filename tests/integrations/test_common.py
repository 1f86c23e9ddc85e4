"""What the Ray commands (`edgedet batch`, `edgedet serve`) join when no address is given."""

import pytest

from edgedet.integrations.common import ray_address


def test_commands_start_a_ray_of_their_own_unless_told(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None) == "local"  # not Ray's default, which joins a cluster `ray start` left here
    assert ray_address("auto") == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert ray_address(None) == "10.0.0.5:6379"
    assert ray_address("auto") == "auto"  # the flag wins over the environment
    monkeypatch.setenv("RAY_ADDRESS", "")
    assert ray_address(None) == "local"
    services = pytest.importorskip("ray._private.services")
    assert services.canonicalize_bootstrap_address("local") is None  # Ray: None = start a new local instance
