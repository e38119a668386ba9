"""The Ray Serve deployment's options, autoscaling policy and version, without a cluster."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

pytest.importorskip("ray.serve")

from facecast.errors import InvalidArgument  # noqa: E402
from facecast.server.ray.deployment import (METRIC, ReplicaOptions, code_version, facecast_app,  # noqa: E402
                                            sessions_policy)
from facecast.server.ray.options import parse_replicas  # noqa: E402
from facecast.server.settings import ServerSettings  # noqa: E402


def test_replicas_parse_as_a_number_or_bounds():
    assert parse_replicas("2") == (2, 2) and parse_replicas("1:8") == (1, 8) and parse_replicas("0:3") == (0, 3)
    for bad in ("x", "3:1", "0", "-1:2", "1:y"):
        with pytest.raises(InvalidArgument):
            parse_replicas(bad)


def test_options_size_ongoing_requests_by_sessions():
    options = ReplicaOptions(sessions=6)
    assert options.max_ongoing_requests == 6 * 3 + 16  # stream + reconnect + socket per session, and spare
    assert options.target() == 4.5 and ReplicaOptions(sessions=1).target() == 1.0
    with pytest.raises(InvalidArgument):
        ReplicaOptions(sessions=0).validate()
    with pytest.raises(InvalidArgument):
        ReplicaOptions(drain_s=-1).validate()


def _context(sessions_by_replica: dict, low=1, high=8, target=4.5):
    return SimpleNamespace(config=SimpleNamespace(target_ongoing_requests=target),
                           aggregated_metrics={METRIC: sessions_by_replica},
                           capacity_adjusted_min_replicas=low, capacity_adjusted_max_replicas=high)


def test_the_policy_asks_for_enough_replicas_for_the_active_sessions():
    assert sessions_policy(_context({}))[0] == 1  # the minimum
    assert sessions_policy(_context({"a": 4.0}))[0] == 1
    assert sessions_policy(_context({"a": 5.0}))[0] == 2
    assert sessions_policy(_context({"a": 6.0, "b": 6.0, "c": 2.0}))[0] == 4  # 14 / 4.5 -> 4
    assert sessions_policy(_context({"a": 100.0}))[0] == 8  # the maximum
    assert sessions_policy(_context({}, low=0))[0] == 0


def test_the_version_changes_with_settings_but_not_with_the_replica_count():
    settings = ServerSettings(warmup=False)
    two = facecast_app(settings, ReplicaOptions(min_replicas=2, max_replicas=2))._bound_deployment
    one = facecast_app(settings, ReplicaOptions(min_replicas=1, max_replicas=1))._bound_deployment
    assert two.version == one.version == code_version(settings.replace(max_sessions=6), 300.0)
    assert two.num_replicas == 2 and one.num_replicas == 1
    assert code_version(dataclasses.replace(settings, session_grace_s=3.0), 300.0) != one.version
    assert code_version(settings, 5.0) != one.version


def test_autoscaling_bounds_make_an_autoscaling_config():
    deployment = facecast_app(ServerSettings(warmup=False), ReplicaOptions(sessions=4, min_replicas=1,
                                                                           max_replicas=5))._bound_deployment
    config = deployment._deployment_config.autoscaling_config
    assert (config.min_replicas, config.max_replicas, config.target_ongoing_requests) == (1, 5, 3.0)
    assert deployment._deployment_config.graceful_shutdown_timeout_s == 310.0
