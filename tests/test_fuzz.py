"""Property-based tests: bad input of every kind fails cleanly; generated valid losses are right.

Example counts scale with the hypothesis profile (tests/conftest.py): the `ci`
default keeps the suite in budget; `HYPOTHESIS_PROFILE=long` runs the long
campaign (README, "Hardening"). See the counts with --hypothesis-show-statistics.
"""

import numpy as np
import pytest
from backend_support import float64_enabled, to_numpy
from dsl_strategies import (DSL_ALPHABET, DSL_WORDS, NUMPY, SHAPE, NumpyInterpreter,
                            bad_subscripts, columns_in, near_misses, programs)
from hypothesis import event, given, settings
from hypothesis import strategies as st

import lossdsl
from lossdsl.language import ir
from lossdsl.ops import OPS

pytestmark = pytest.mark.timeout(900)


def scaled(factor: float) -> settings:
    """``factor`` times the profile's example count (100 in CI, 2,500 in the long run)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


def compiles_or_fails_cleanly(source: str, compile_fn=lossdsl.compile_expression) -> bool:
    """True if ``source`` compiled; a LossDSLError must locate itself and print; nothing else."""
    try:
        compile_fn(source)
        event("compiled")
    except lossdsl.LossDSLError as error:
        event(type(error).__name__)
        assert error.source == source, f"{type(error).__name__} without its source: {error}"
        assert error.line is not None and error.column is not None, f"no position: {error}"
        assert 1 <= error.line <= source.count("\n") + 1
        assert str(error)  # the caret picture renders
        return False
    return True


# ---------------------------------------------------------------- bad input

@scaled(10)
@given(st.text(max_size=200))
def test_arbitrary_text_compiles_or_raises_a_located_error(source):
    compiles_or_fails_cleanly(source)


@scaled(10)
@given(st.text(alphabet=DSL_ALPHABET, max_size=120))
def test_dsl_like_text_compiles_or_raises_a_located_error(source):
    compiles_or_fails_cleanly(source)


_SOUP = DSL_WORDS + ("y_pred", "y_true", "(", ")", ",", "<", "==", "1", "where", "mean", ";",
                     "=", "max", "-", "[", "]", "...", ":")


@scaled(3)
@given(st.lists(st.sampled_from(_SOUP), max_size=20))
def test_keywords_and_foreign_spellings_compile_or_raise_a_located_error(words):
    """and/or/not, chains, if/else, np.log, &&: every combination fails cleanly or compiles."""
    compiles_or_fails_cleanly(" ".join(words))


@scaled(6)
@given(near_misses())
def test_near_miss_sources_compile_or_raise_a_located_error(source):
    compiles_or_fails_cleanly(source)


@scaled(0.5)
@given(near_misses(depth=3))
def test_near_miss_sources_through_keras_compile_or_raise_a_located_error(source):
    compiles_or_fails_cleanly(source, lossdsl.compile)


@scaled(3)
@given(bad_subscripts())
def test_refused_subscripts_raise_a_located_error(source):
    """x[k], x[:, k], ranges, non-literal indices, malformed lists: never compiled, located."""
    assert not compiles_or_fails_cleanly(source), source


@scaled(0.3)
@given(bad_subscripts(depth=2))
def test_refused_subscripts_through_keras_raise_a_located_error(source):
    assert not compiles_or_fails_cleanly(source, lossdsl.compile), source


# ---------------------------------------------------------------- generated valid losses

def test_the_numpy_interpreter_covers_every_op():
    """A new row of OPS needs its independent NumPy form here (the generator picks it up)."""
    missing = [op.name for op in OPS if op.kind == "elementwise" and op.name not in NUMPY]
    assert not missing


@scaled(5)
@given(programs())
def test_canonical_text_parses_back_to_the_same_program(program):
    event("with columns" if columns_in(program) else "without columns")
    text = str(program)
    parsed = ir.parse_source(text)
    assert parsed == program
    assert str(parsed) == text


def _inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 0.9, SHAPE), rng.uniform(0.1, 0.9, SHAPE)


def _compiled_or_skip(source: str, **kwargs):
    """Compile a generated valid loss; hitting a documented limit is not a failure."""
    try:
        loss = lossdsl.compile(source, **kwargs)
    except lossdsl.DSLTypeError as error:  # a constant like log(0.5 - 0.5): refused, not a bug
        assert "constant" in error.message
        event("refused: a constant without a real value")
    except lossdsl.DSLLimitError as error:
        event(f"refused: {error.message[:40]}")
    else:
        event("compiled")
        return loss
    return None


def _expand_per_sample(per_sample: np.ndarray, full_shape: tuple[int, ...]) -> np.ndarray:
    """Undo the squeeze of the axes along which the loss is constant (sizes are distinct)."""
    squeezed = [axis for axis, size in enumerate(full_shape) if size not in per_sample.shape]
    return np.broadcast_to(np.expand_dims(per_sample, squeezed), full_shape)


# These two run on every Keras backend (marked `backends`, see tests/run_all.sh): any
# divergence of a backend's interpreter from the language fails here, not only the
# cases someone thought of.
@pytest.mark.backends
@scaled(1.5)
@given(programs(depth=3), st.integers(0, 2**16))
def test_compiled_loss_agrees_with_numpy_float64(program, seed):
    event("with columns" if columns_in(program) else "without columns")
    y_true, y_pred = _inputs(seed)
    with float64_enabled():  # JAX computes float64 only with x64 on
        loss = _compiled_or_skip(str(program), dtype="float64")
        if loss is None:
            return
        ours = _expand_per_sample(to_numpy(loss.call(y_true, y_pred)), SHAPE)
    assert ours.dtype == np.float64
    reference = NumpyInterpreter(program, y_true, y_pred, loss.params).run()
    finite = np.isfinite(ours) & np.isfinite(reference)
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-7, atol=1e-9)


@scaled(0.5)
@given(programs(depth=3), st.integers(1, SHAPE[-1] - 1))
def test_a_column_out_of_range_raises_a_located_shape_error_when_called(program, width):
    """Generated columns are valid for SHAPE; narrower inputs leave some out of range."""
    loss = _compiled_or_skip(str(program), dtype="float64")
    if loss is None:
        return
    y_true, y_pred = _inputs(0)
    y_true, y_pred = y_true[..., :width], y_pred[..., :width]
    outside = [k for k in columns_in(program) if not -width <= k < width]
    if not outside:
        event("every column in range" if columns_in(program) else "no column")
        loss(y_true, y_pred)
        return
    event("a column out of range")
    with pytest.raises(lossdsl.DSLShapeError) as caught:
        loss(y_true, y_pred)
    error, source = caught.value, str(program)
    assert error.source == source and error.span is not None, error
    shown = source[error.span.start:error.span.end]
    assert shown.endswith("]") and int(shown.rsplit(",", 1)[1][:-1]) in outside, shown
    assert f"has {width} element" in error.message, error.message


@pytest.mark.backends
@scaled(1)
@given(programs(depth=3), st.integers(0, 2**16))
def test_symbolic_gradient_agrees_with_the_backends_autodiff(program, seed):
    event("with columns" if columns_in(program) else "without columns")
    loss = _compiled_or_skip(str(program))
    if loss is None:
        return
    y_true, y_pred = _inputs(seed)
    report = lossdsl.check_gradients(loss, y_true, y_pred, rtol=1e-6, atol=1e-8)
    assert not report.mismatched, f"{program}\n{report}"
    # Too few finite entries to conclude is not a pass: counted, shown in the statistics.
    event("inconclusive: mostly non-finite" if report.inconclusive else "gradients agree")

