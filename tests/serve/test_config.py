"""ServeSettings: validation, the deployment options and HTTP options it gives Serve."""

from __future__ import annotations

import pytest

from hqray.errors import ConfigError
from hqray.serve import ServeSettings
from hqray.serve.config import PROXY_TIMEOUT_MARGIN_S


class TestValidation:
    def test_autoscaling_maximum_below_the_minimum_is_named(self):
        with pytest.raises(ConfigError, match=r"max_replicas \(2\) must be at least replicas \(3\)"):
            ServeSettings(autoscaling=True, replicas=3, max_replicas=2)

    def test_fixed_replicas_ignore_max_replicas(self):
        assert ServeSettings(replicas=3, max_replicas=2).deployment_options()["num_replicas"] == 3

    @pytest.mark.parametrize(("field", "value"), [("port", 0), ("request_timeout_s", 0), ("tier", "tpu"),
                                                  ("max_batch_size", 0), ("replicas", 0)])
    def test_bad_values_are_named(self, field, value):
        with pytest.raises(ConfigError, match=rf"ServeSettings {field}: .*\(got {value!r}\)"):
            ServeSettings(**{field: value})

    def test_unknown_fields_are_errors(self):
        with pytest.raises(ConfigError, match="batch_size: unknown field"):
            ServeSettings(batch_size=8)


class TestDeploymentOptions:
    @pytest.mark.parametrize(("tier", "expected"), [
        ("cpu", {"num_cpus": 0.5}),
        ("gpu", {"num_cpus": 0, "num_gpus": 1}),
        ("qpu", {"num_cpus": 0, "resources": {"QPU": 1}}),
    ])
    def test_replicas_request_their_tiers_resource(self, tier, expected):
        assert ServeSettings(tier=tier, replica_cpus=0.5).deployment_options()["ray_actor_options"] == expected

    def test_autoscaling_between_replicas_and_max_replicas(self):
        options = ServeSettings(autoscaling=True, replicas=2, max_replicas=5, max_batch_size=16).deployment_options()
        assert "num_replicas" not in options
        assert options["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 5, "target_ongoing_requests": 8}

    def test_overload_limits_reach_serve(self):
        options = ServeSettings(max_ongoing_requests=3, max_queued_requests=7).deployment_options()
        assert (options["max_ongoing_requests"], options["max_queued_requests"]) == (3, 7)


def test_the_proxy_cuts_off_after_the_gateway():
    """The Gateway answers a slow prediction with a 504 in the error schema before the proxy's
    own timeout (plain text) can fire."""
    options = ServeSettings(request_timeout_s=2.5).http_options()
    assert options["request_timeout_s"] == 2.5 + PROXY_TIMEOUT_MARGIN_S > 2.5
