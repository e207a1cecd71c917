"""Shared test setup: quiet TensorFlow, deterministic seeds, float32 by default."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _floatx_float32():
    """Tests that change keras floatx get it restored."""
    yield
    import sys
    if "keras" in sys.modules:
        sys.modules["keras"].config.set_floatx("float32")
