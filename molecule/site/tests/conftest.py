"""The site scenario's two NAS by name, for the tests that look at both."""

import pytest
import testinfra


@pytest.fixture(scope="module")
def omv():
    return testinfra.get_host("docker://nas-site-omv")


@pytest.fixture(scope="module")
def trixie():
    return testinfra.get_host("docker://nas-site-trixie")
