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


def test_autoscaling_delays_come_from_options_or_the_environment(monkeypatch):
    from facecast.server.ray.options import replica_options

    config = lambda options: facecast_app(ServerSettings(warmup=False), options)._bound_deployment \
        ._deployment_config.autoscaling_config  # noqa: E731
    default = config(replica_options(replicas="1:3"))
    assert (default.upscale_delay_s, default.downscale_delay_s) == (5.0, 60.0)
    monkeypatch.setenv("FACECAST_RAY_DOWNSCALE_DELAY_S", "7")
    assert config(replica_options(replicas="1:3")).downscale_delay_s == 7.0
    given = config(replica_options(replicas="1:3", upscale_delay=1, downscale_delay=2))  # the option wins
    assert (given.upscale_delay_s, given.downscale_delay_s) == (1.0, 2.0)
    monkeypatch.setenv("FACECAST_RAY_DOWNSCALE_DELAY_S", "soon")
    with pytest.raises(InvalidArgument, match="FACECAST_RAY_DOWNSCALE_DELAY_S"):
        replica_options(replicas="1:3")
    with pytest.raises(InvalidArgument, match="downscale_delay_s"):
        ReplicaOptions(downscale_delay_s=-1).validate()


def test_the_serve_application_builder_takes_serves_args_dict(tmp_path, monkeypatch):
    """`serve run facecast.server.ray.deployment:build_app k=v` and KubeRay's import_path + args."""
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.deployment import Application

    from facecast.server.ray.deployment import build_app

    monkeypatch.setenv("FACECAST_SESSION_GRACE_S", "4")
    args = {"replicas": "1:4", "max_sessions": "3", "target_sessions": 2, "backend": "classic", "replica_cpus": 2,
            "drain": "20", "downscale_delay": "15", "data_dir": str(tmp_path), "warmup": "false"}
    app = call_user_app_builder_with_args_if_necessary(build_app, args)  # as Serve calls an import path
    assert isinstance(app, Application)
    deployment = app._bound_deployment
    config = deployment._deployment_config
    assert (config.autoscaling_config.min_replicas, config.autoscaling_config.max_replicas) == (1, 4)
    assert config.autoscaling_config.target_ongoing_requests == 2.0
    assert config.autoscaling_config.downscale_delay_s == 15.0 and config.max_ongoing_requests == 3 * 3 + 16
    assert deployment.ray_actor_options["num_cpus"] == 2.0 and config.graceful_shutdown_timeout_s == 30.0
    settings, drain = deployment._replica_config.init_args  # FacecastReplica(settings, drain_s)
    assert (settings.data_dir, settings.warmup, settings.session_grace_s, settings.max_sessions, settings.backend) \
        == (tmp_path, False, 4.0, 3, "classic") and drain == 20.0
    assert isinstance(build_app({}), Application)  # every arg has a default: one replica
    for bad, message in [({"replica": "2"}, "unknown facecast app args \\['replica'\\]"),
                         ({"replicas": "4:1"}, "--replicas '4:1'"), ({"max_sessions": "many"}, "max_sessions='many'"),
                         ({"warmup": "maybe"}, "warmup='maybe'"), ({"drain": "-1"}, "drain_s=-1"),
                         ({"target_sessions": "0"}, "target_sessions=0")]:
        with pytest.raises(InvalidArgument, match=message):
            build_app(bad)
