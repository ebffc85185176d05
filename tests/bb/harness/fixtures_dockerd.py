"""pytest fixtures for the docker tests: a real engine and the base image."""
import pytest

from harness import baseimage, dockerd


@pytest.fixture(scope="session")
def docker_engine():
    """The socket of an answering Docker engine (started when needed)."""
    return dockerd.ensure_dockerd()


@pytest.fixture(scope="session")
def docker_base(docker_engine):
    """tether-test-base:bookworm in the engine (debootstrapped once, cached
    under /var/cache/tether-test)."""
    return baseimage.ensure_base_image()
