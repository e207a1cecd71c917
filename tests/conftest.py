"""Shared test setup: quiet TensorFlow, deterministic seeds, float32 by default, fuzz profiles."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Hypothesis profiles: `ci` (the default) keeps the whole suite within its time budget;
# `long` is the on-demand campaign: HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py
# Properties scale their example counts from `settings.default.max_examples`.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=_SLOW_OK, print_blob=True)
settings.register_profile("long", max_examples=2_500, deadline=None,
                          suppress_health_check=_SLOW_OK, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A script run in a subprocess by test_distribute.py, not a module of tests.
collect_ignore = ["distribute_check.py"]


def pytest_configure(config: pytest.Config) -> None:
    """The `backends` marker: tests/run_all.sh runs `-m backends` again on JAX and PyTorch."""
    config.addinivalue_line(
        "markers", "backends: runs once per Keras backend (KERAS_BACKEND=tensorflow, jax, torch)")


@pytest.fixture(autouse=True)
def _floatx_float32():
    """Tests that change keras floatx get it restored."""
    yield
    import sys
    if "keras" in sys.modules:
        sys.modules["keras"].config.set_floatx("float32")
