"""The generated-loss properties of tests/test_fuzz.py, on JAX and PyTorch.

Marked ``backends`` (tests/run_all.sh runs it in a JAX and a PyTorch process):
every generated valid loss computes the NumPy interpreter's value in float64, and
its symbolic gradient agrees with the backend's own autodiff (``jax.grad``,
``torch.autograd``) through ``lossdsl.check_gradients``. So any divergence of the
``keras.ops`` interpreter from the language (a function, a tie, a guard, a shape
rule) fails here, not only the cases someone thought of. On TensorFlow,
tests/test_fuzz.py runs the same properties.
"""

import numpy as np
import pytest
from backend_support import BACKEND, float64_enabled, to_numpy
from dsl_strategies import SHAPE, NumpyInterpreter, programs
from hypothesis import event, given
from hypothesis import strategies as st
from test_fuzz import _compiled_or_skip, _expand_per_sample, _inputs, scaled

import lossdsl

pytestmark = [pytest.mark.backends, pytest.mark.timeout(900),
              pytest.mark.skipif(BACKEND == "tensorflow",
                                 reason="tests/test_fuzz.py runs these properties on TensorFlow")]


@scaled(0.75)
@given(programs(depth=3), st.integers(0, 2**16))
def test_compiled_loss_agrees_with_numpy_float64(program, seed):
    loss = _compiled_or_skip(str(program), dtype="float64")
    if loss is None:
        return
    y_true, y_pred = _inputs(seed)
    with float64_enabled():
        ours = _expand_per_sample(to_numpy(loss.call(y_true, y_pred)), SHAPE)
    assert ours.dtype == np.float64
    reference = NumpyInterpreter(program, y_true, y_pred, loss.params).run()
    finite = np.isfinite(ours) & np.isfinite(reference)
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-7, atol=1e-9)


@scaled(0.5)
@given(programs(depth=3), st.integers(0, 2**16))
def test_symbolic_gradient_agrees_with_the_backends_autodiff(program, seed):
    loss = _compiled_or_skip(str(program))
    if loss is None:
        return
    y_true, y_pred = _inputs(seed)
    report = lossdsl.check_gradients(loss, y_true, y_pred, rtol=1e-6, atol=1e-8)
    assert not report.mismatched, f"{program}\n{report}"
    event("inconclusive: mostly non-finite" if report.inconclusive else "gradients agree")
