"""Generated programs with a vector parameter and an extra input, against NumPy.

The generator's programs read the parameters ``alpha`` and ``beta``; here ``alpha``
is given one value per element of the last axis (a vector parameter) and ``beta``
is declared an extra input (a tensor of the sample's shape in y_true's dict; its
default binding is dropped). The
reference is the independent NumPy interpreter of tests/dsl_strategies.py, which
broadcasts the vector along the last axis as NumPy does.
"""

from __future__ import annotations

import numpy as np
import pytest
from backend_support import float64_enabled, to_numpy
from dsl_strategies import SHAPE, NumpyInterpreter, columns_in, programs
from hypothesis import event, given
from hypothesis import strategies as st
from test_fuzz import _expand_per_sample, scaled

import lossdsl
from lossdsl.language import ir

pytestmark = pytest.mark.timeout(900)


def _reads(program: ir.Program, name: str) -> bool:
    exprs = [b.value for b in program.bindings] + [program.body]
    return any(node.id == name for expr in exprs for node in ir.names_in(expr))


@pytest.mark.backends
@scaled(2)
@given(programs(depth=3), st.integers(0, 2**16))
def test_vector_parameters_and_extra_inputs_agree_with_numpy(program, seed):
    vector, extra = _reads(program, "alpha"), _reads(program, "beta")
    # The generator binds both a default; `beta`'s goes, so that it can be an input.
    program = ir.Program(tuple(b for b in program.bindings if b.name != "beta"), program.body)
    source = str(program)
    if not (vector or extra):
        event("neither alpha nor beta")
        return
    event(f"vector: {vector}, extra input: {extra}, columns: {bool(columns_in(program))}")
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.uniform(0.1, 0.9, SHAPE), rng.uniform(0.1, 0.9, SHAPE)
    params = {"alpha": list(rng.uniform(0.2, 2.0, SHAPE[-1]))} if vector else {}
    beta = rng.uniform(0.1, 0.9, SHAPE)
    with float64_enabled():
        try:
            loss = lossdsl.compile(source, dtype="float64", reduction="none",
                                   inputs=["beta"] if extra else None, **params)
        except (lossdsl.DSLTypeError, lossdsl.DSLLimitError) as error:
            event(f"refused: {type(error).__name__}")  # a constant without a value, a limit
            return
        labels = {"y_true": y_true, "beta": beta} if extra else y_true
        ours = _expand_per_sample(to_numpy(loss.call(labels, y_pred)), SHAPE)
    values = {name: np.asarray(value) for name, value in loss.params.items()}
    interpreter = NumpyInterpreter(program, y_true, y_pred, values)
    if extra:
        interpreter.names["beta"] = beta
    reference = interpreter.run()
    finite = np.isfinite(ours) & np.isfinite(reference)
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-7, atol=1e-9)
