"""Triples of samples: a pair function along ``axis=-2`` makes each sample's rows (batch, batch).

A loss reading ``pair_dist(y_pred, axis=-2)`` is over the batch's triples (a, j, k): its
full shape is (batch, batch, batch), a pair function along ``axis=-2`` has f(a, j) at
[a, j, k] and one along the default ``axis=-1`` has f(a, k) there. Generated triple
programs (``tests/dsl_strategies.py``: ``triple_programs``) agree with the NumPy
interpreter in value, per sample and as Keras reduces them, and in gradient with the TF
tape, the derived formula (both gradient modes) and central differences of the
interpreter; a few values are worked out with loops; the refusals say what to write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from backend_support import tape_value_and_gradient
from dsl_strategies import SHAPE, NumpyInterpreter, triple_programs
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_differential import RTOL, ATOL, Exported, _compiles, assert_pair_computations_agree

import lossdsl
from lossdsl.errors import DSLAxisError, DSLShapeError
from lossdsl.language import ir

RNG = np.random.default_rng(1729)

SEMI_HARD = ("margin = 1; dp = pair_dist(y_pred, axis=-2); dn = pair_dist(y_pred); "
             "negative = 1 - pair_eq(y_true); "
             "positive = pair_eq(y_true, axis=-2) - pair_self(axis=-2); "
             "outside = max(where(dn > dp, negative, 0), axis=-1); "
             "nearest_outside = min(where(dn > dp and negative > 0, dn, max(dn, axis=-1)), "
             "axis=-1); "
             "farthest_inside = max(where(negative > 0, dn, min(dn, axis=-1)), axis=-1); "
             "semi = where(outside > 0, nearest_outside, farthest_inside); "
             "sum(relu(margin + dp - semi)*positive, axis=-2)*sum(1, axis=0)"
             "/sum(positive, axis=(0, -2))")
BATCH_ALL = ("margin = 1; dp = pair_dist(y_pred, axis=-2); dn = pair_dist(y_pred); "
             "valid = (pair_eq(y_true, axis=-2) - pair_self(axis=-2))*(1 - pair_eq(y_true)); "
             "l = relu(dp - dn + margin)*valid; "
             "sum(l, axis=(-2, -1))*sum(1, axis=0)/(sum(where(l > 0, 1, 0), axis=(0, -2, -1)) "
             "+ 1e-16)")


# ---------------------------------------------------------------- helpers

def _distances(x: np.ndarray) -> np.ndarray:
    """||x_a - x_b|| by loops: the (batch, batch) matrix a hand computation starts from."""
    v = x.reshape(len(x), -1)
    return np.array([[float(np.sqrt(np.sum((v[a] - v[b]) ** 2))) for b in range(len(v))]
                     for a in range(len(v))])


def _per_sample(loss, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The loss's per-sample output (``loss.call``): the axes it reduced are dropped."""
    return np.asarray(loss.call(tf.constant(y_true, tf.float64), tf.constant(y_pred, tf.float64)))


def _matches_at_full_shape(per_sample: np.ndarray, reference: np.ndarray) -> bool:
    """Whether the per-sample output is the reference with some of a triple's axes dropped.

    Every axis after the batch axis has the batch's size, so the output does not say which
    it dropped: it matches when some choice of them, put back and broadcast, is the
    reference (which must then be constant along them)."""
    dropped = reference.ndim - per_sample.ndim
    if dropped < 0 or per_sample.shape[:1] != reference.shape[:1]:
        return False
    for axes in _choices(tuple(range(1, reference.ndim)), dropped):
        full = np.broadcast_to(np.expand_dims(per_sample, axes), reference.shape)
        if np.allclose(full, reference, rtol=RTOL, atol=ATOL):
            return True
    return False


def _choices(items: tuple[int, ...], count: int) -> list[tuple[int, ...]]:
    if count == 0:
        return [()]
    return [(first,) + rest for i, first in enumerate(items)
            for rest in _choices(items[i + 1:], count - 1)]


def _central_differences(program: ir.Program, params: dict, y_true: np.ndarray,
                         y_pred: np.ndarray, step: float) -> np.ndarray:
    """d mean(NumPy interpreter) / d y_pred by central differences (Keras's reduction:
    the mean over the per-sample output is the mean over the full shape)."""
    def value(x: np.ndarray) -> float:
        return float(np.mean(NumpyInterpreter(program, y_true, x, params).run()))

    grad = np.zeros(y_pred.shape)
    for index in np.ndindex(y_pred.shape):
        up, down = y_pred.copy(), y_pred.copy()
        up[index] += step
        down[index] -= step
        grad[index] = (value(up) - value(down)) / (2 * step)
    return grad


def assert_triple_computations_agree(program: ir.Program, y_true: np.ndarray,
                                     y_pred: np.ndarray, directory: Path | None = None
                                     ) -> "lossdsl.GradientReport | None":
    """The differential property for a triple program, on the whole batch (as
    :func:`test_differential.assert_pair_computations_agree`), and more:

    - autodiff, symbolic and (given a ``directory``) the exported module agree with the NumPy
      interpreter per sample (``loss.call``, put back at the full shape) and in Keras's
      reduced value (their mean);
    - their tape gradients agree with each other and with central differences of the
      interpreter, wherever those do not depend on the step (away from kinks: max, relu,
      where);
    - the derived formula agrees with the tape (``check_gradients``: nothing mismatched).

    None when the reference is not finite everywhere (or the interpreter cannot broadcast
    an input the simplified formula no longer reads).
    """
    source = str(program)
    autodiff = lossdsl.compile(source, dtype="float64")
    symbolic = lossdsl.compile(source, dtype="float64", gradient="symbolic")
    params = dict(autodiff.params)
    try:
        reference = NumpyInterpreter(program, y_true, y_pred, params).run()
    except ValueError:  # (batch, 3) predictions read where lossdsl's formula, simplified,
        return None     # does not (0*y_pred): the interpreter reads it as written
    if not np.isfinite(reference).all():
        return None
    assert reference.shape == (len(y_pred),) * 3
    results = {}
    losses = [("autodiff", autodiff), ("symbolic", symbolic)]
    if directory is not None:
        losses.append(("exported", Exported(source, params, directory).loss))
    for name, loss in losses:
        per_sample = _per_sample(loss, y_true, y_pred)
        assert _matches_at_full_shape(per_sample, reference), (
            f"{name}: per-sample output {per_sample.shape} is not the NumPy reference\n"
            f"{source}\n{per_sample}\n{reference}")
        value, grad = tape_value_and_gradient(lambda t, p: loss(t, p), y_true, y_pred)
        np.testing.assert_allclose(value, np.mean(reference), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name} value != NumPy reference\n{source}")
        results[name] = grad
    tape = results["autodiff"]
    for name in set(results) - {"autodiff"}:
        both = np.isfinite(tape) & np.isfinite(results[name])
        np.testing.assert_allclose(results[name][both], tape[both], rtol=1e-6, atol=1e-9,
                                   err_msg=f"{name} tape gradient != autodiff's\n{source}")
    coarse, fine = (_central_differences(program, params, y_true, y_pred, step)
                    for step in (1e-5, 1e-6))
    # rounding in differences of a large loss: eps * |terms| / step
    noise = max(1e-6, 1e-15 * float(np.abs(reference).max()) * reference.size / 1e-6)
    smooth = (np.isfinite(tape) & np.isfinite(coarse) & np.isfinite(fine)
              & np.isclose(coarse, fine, rtol=1e-4, atol=noise))
    if "stop_gradient" in source:  # the interpreter's stop_gradient is the identity
        smooth = np.zeros_like(smooth)
    np.testing.assert_allclose(tape[smooth], fine[smooth], rtol=1e-4, atol=noise,
                               err_msg=f"tape gradient != central differences\n{source}")
    event(f"central differences: {int(smooth.sum())}/{smooth.size} entries compared")
    report = lossdsl.check_gradients(autodiff, y_true, y_pred, rtol=1e-6, atol=1e-8)
    assert not report.mismatched, f"{source}\n{report}"
    return report


def _triple_points(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (batch, 1) or (batch,) of 3 classes, and predictions (batch, 3) (read through
    pair functions only: a program reading them directly is refused), (batch, 1) (twice as
    often) or (batch,), with batch = SHAPE[-1] (the strategies' columns are in range)."""
    rng = np.random.default_rng(seed)
    batch = SHAPE[-1]
    labels = rng.integers(0, 3, (batch, 1)).astype("float64")
    shape = [(batch, 3), (batch, 1), (batch,), (batch, 1)][seed % 4]
    return (labels[:, 0] if seed % 3 == 0 else labels), rng.uniform(0.1, 0.9, shape)


def _refused_for_these_shapes(source: str, y_true: np.ndarray, y_pred: np.ndarray) -> bool:
    """Whether the loss refuses the inputs for their shapes: (batch, 3) predictions read
    directly (not one number per sample), or a column x[..., k] these inputs do not have;
    any other refusal fails the test."""
    try:
        lossdsl.compile(source)(y_true, y_pred)
    except DSLShapeError as error:
        if y_pred.ndim == 2 and y_pred.shape[1] > 1 and "`y_pred` has shape" in error.message:
            return True
        if "column" in error.message:
            return True
        raise
    return False


# ---------------------------------------------------------------- generated programs

@pytest.fixture(scope="module")
def export_directory(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exported_triples")


@settings(max_examples=settings.default.max_examples, deadline=None)
@given(triple_programs(), st.integers(0, 2**16))
def test_generated_triple_programs_agree_with_numpy_and_the_tape(export_directory, program,
                                                                 seed) -> None:
    """Autodiff, symbolic and exported agree with the NumPy interpreter in value (per sample
    and reduced), with each other, central differences and the derived formula in gradient."""
    source = str(program)
    y_true, y_pred = _triple_points(seed)
    if not _compiles(source):
        return
    if _refused_for_these_shapes(source, y_true, y_pred):
        event("triple program: refused for these shapes")
        return
    event(f"predictions {y_pred.shape}")
    report = assert_triple_computations_agree(program, y_true, y_pred, export_directory)
    if report is None:
        event("triple program: non-finite reference")
        return
    event("formula vs tape: inconclusive" if report.inconclusive else "formula vs tape: agree")


@pytest.mark.parametrize("source", [
    BATCH_ALL, SEMI_HARD,
    "sum(y_true*pair_dist(y_pred, axis=-2) - pair_dist(y_pred)^2, axis=(-2, -1))",
    "mean(relu(pair_sqdist(y_pred, axis=-2) - pair_sqdist(y_pred) + 0.5)*pair_eq(y_true, "
    "axis=-2)*(1 - pair_eq(y_true)))",
    "logsumexp(pair_cos(y_pred) - pair_cos(y_pred, axis=-2), axis=(-2, -1))",
], ids=["batch-all", "semi-hard", "by hand", "mean", "logsumexp"])
@pytest.mark.parametrize("labels_shape", [(10,), (10, 1)], ids=["(batch,)", "(batch, 1)"])
def test_triple_losses_agree_by_the_pair_helper(tmp_path, source, labels_shape) -> None:
    """test_differential's helper, as it is: autodiff, symbolic and exported agree with the
    NumPy interpreter in value and with each other in tape gradient, and the formula with
    the tape, on a batch with a class of one and three of several."""
    labels = np.array([0, 1, 0, 2, 1, 2, 0, 1, 3, 0], "float64").reshape(labels_shape)
    x = np.random.default_rng(5).normal(size=(10, 3))
    report = assert_pair_computations_agree(ir.parse_source(source), {}, labels, x, tmp_path)
    assert report is not None and report.passed, str(report)


def test_the_strategy_draws_triples_with_both_axes() -> None:
    """Every drawn program reads a pair function along j and one along k (the interpreter
    then works at (batch, batch, batch)), and the reductions of a triple come up."""
    seen: set = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(triple_programs())
    def draw(program) -> None:
        labels, x = np.zeros(SHAPE[-1]), np.linspace(0.1, 0.9, SHAPE[-1])
        interpreter = NumpyInterpreter(program, labels, x, {"alpha": 2.0, "beta": 0.5})
        assert interpreter.triples and interpreter.shape == (SHAPE[-1],) * 3
        node = program.body
        while isinstance(node, (ir.Call, ir.Binary)):  # the reductions around the body
            if isinstance(node, ir.Call):
                seen.add(node.axis)
            node = node.left if isinstance(node, ir.Binary) else node.args[0]

    draw()
    assert {(-1,), (-2,), (0,), None} <= seen and seen & {(-2, -1), (-1, -2)}, seen


# ---------------------------------------------------------------- values by hand

EMBEDDINGS = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, -1.0]])  # a batch of 3
LABELS = np.array([0.0, 0.0, 1.0])


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_a_triple_is_laid_out_a_j_k(gradient) -> None:
    """[a, j, k] is f(a, j) for axis=-2 and f(a, k) for axis=-1, worked out with loops."""
    x, d = EMBEDDINGS, _distances(EMBEDDINGS)
    dot = x @ x.T
    loss = lossdsl.compile("pair_dist(y_pred, axis=-2) - 2*pair_dot(y_pred)", dtype="float64",
                           reduction="none", gradient=gradient)
    expected = np.array([[[d[a, j] - 2 * dot[a, k] for k in range(3)] for j in range(3)]
                         for a in range(3)])
    np.testing.assert_allclose(np.asarray(loss(LABELS, x)), expected, rtol=1e-12, atol=1e-12)
    same = lossdsl.compile("(pair_eq(y_true, axis=-2) - pair_self(axis=-2))*(1 - pair_eq(y_true))",
                           dtype="float64", reduction="none", gradient=gradient)
    valid = np.array([[[float(LABELS[a] == LABELS[j] and a != j and LABELS[a] != LABELS[k])
                        for k in range(3)] for j in range(3)] for a in range(3)])
    assert valid.sum() == 2  # (0, 1, 2) and (1, 0, 2)
    np.testing.assert_array_equal(np.asarray(same(LABELS, x)), valid)


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_a_fully_reduced_triple_by_hand(gradient) -> None:
    """sum over (j, k) of t_a d(a, j) - d(a, k)^2 = 3 t_a sum_j d(a, j) - 3 sum_k d(a, k)^2
    (batch of 3), and its gradient by central differences of the loops."""
    source = "sum(y_true*pair_dist(y_pred, axis=-2) - pair_dist(y_pred)^2, axis=(-2, -1))"
    labels = np.array([0.5, 2.0, 1.0])

    def by_hand(x: np.ndarray) -> np.ndarray:
        d = _distances(x)
        return np.array([sum(labels[a] * d[a, j] - d[a, k] ** 2 for j in range(3)
                             for k in range(3)) for a in range(3)])

    per_sample = lossdsl.compile(source, dtype="float64", reduction="none", gradient=gradient)
    np.testing.assert_allclose(np.asarray(per_sample(labels, EMBEDDINGS)), by_hand(EMBEDDINGS),
                               rtol=1e-12)
    d = _distances(EMBEDDINGS)
    np.testing.assert_allclose(by_hand(EMBEDDINGS),
                               3 * labels * d.sum(1) - 3 * (d ** 2).sum(1), rtol=1e-12)
    # the brief's check: sum over (j, k) of d(a, j) - d(a, k) is 0 for every a
    zero = lossdsl.compile("sum(pair_dist(y_pred, axis=-2) - pair_dist(y_pred), axis=(-2,-1))",
                           dtype="float64", reduction="none", gradient=gradient)
    np.testing.assert_allclose(np.asarray(zero(labels, EMBEDDINGS)), np.zeros(3), atol=1e-12)

    loss = lossdsl.compile(source, dtype="float64", gradient=gradient)
    value, grad = tape_value_and_gradient(lambda t, p: loss(t, p), labels, EMBEDDINGS)
    np.testing.assert_allclose(value, by_hand(EMBEDDINGS).mean(), rtol=1e-12)
    numeric = np.zeros(EMBEDDINGS.shape)
    for index in np.ndindex(EMBEDDINGS.shape):
        up, down = EMBEDDINGS.copy(), EMBEDDINGS.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric[index] = (by_hand(up).mean() - by_hand(down).mean()) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_a_reduction_over_k_then_over_j_by_hand(gradient) -> None:
    """max over k then sum over j: sum_j relu(d(a, j) - min_k d(a, k) + t_a): the inner
    output is [a, j], the outer one sample's number."""
    x, d, t = EMBEDDINGS, _distances(EMBEDDINGS), np.array([0.5, -4.0, 1.0])
    inner = lossdsl.compile("relu(max(pair_dist(y_pred, axis=-2) - pair_dist(y_pred), axis=-1) "
                            "+ y_true)", dtype="float64", reduction="none", gradient=gradient)
    expected = np.array([[max(d[a, j] - d[a, k] for k in range(3)) for j in range(3)]
                         for a in range(3)])
    expected = np.maximum(expected + t[:, None], 0.0)
    got = np.asarray(inner(t, x))
    # y_true read directly is one number per sample next to triples: it keeps no axis
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    no_input = lossdsl.compile("max(pair_dist(y_pred, axis=-2) - pair_dist(y_pred), axis=-1)",
                               dtype="float64", reduction="none", gradient=gradient)
    assert np.asarray(no_input(t, x)).shape == (3, 3)
    outer = lossdsl.compile("sum(relu(max(pair_dist(y_pred, axis=-2) - pair_dist(y_pred), "
                            "axis=-1) - 0.5), axis=-2)", dtype="float64", reduction="none",
                            gradient=gradient)
    expected = np.array([[max(d[a, j] - d[a, k] for k in range(3)) for j in range(3)]
                         for a in range(3)])
    np.testing.assert_allclose(np.asarray(outer(t, x)), np.maximum(expected - 0.5, 0).sum(1),
                               rtol=1e-12)


# ---------------------------------------------------------------- shapes and refusals

@pytest.mark.parametrize("source", [
    "pair_dist(y_pred, axis=-3)", "pair_self(axis=-3)",
    "sum(pair_eq(y_true, axis=-3)*pair_dist(y_pred), axis=(-2, -1))",
    "pair_dist(y_pred, axis=0)", "pair_dot(y_pred, axis=(-2, -1))",
])
def test_a_pair_function_runs_along_axis_minus_1_or_minus_2_only(source) -> None:
    with pytest.raises(DSLAxisError, match="axis=-1 .*or axis=-2"):
        lossdsl.compile(source)


@pytest.mark.parametrize("shape", [(4, 4), (4, 3)], ids=["(batch, batch)", "(batch, 3)"])
def test_a_matrix_read_directly_next_to_a_triple_is_refused(shape) -> None:
    source = "sum(y_true*pair_dist(y_pred, axis=-2) - pair_dist(y_pred), axis=(-2, -1))"
    loss = lossdsl.compile(source)
    with pytest.raises(DSLShapeError, match=r"\(batch,\) or \(batch, 1\)"):
        loss(RNG.uniform(size=shape).astype("float32"), RNG.normal(size=(4, 3)).astype("float32"))
    # (batch, batch) is still read next to pairs, and one number per sample next to triples
    pairs = lossdsl.compile("sum(y_true*pair_dist(y_pred), axis=-1)")
    assert np.isfinite(float(pairs(RNG.uniform(size=(4, 4)), RNG.normal(size=(4, 3)))))
    for labels in (RNG.uniform(size=(4, 1)), RNG.uniform(size=4)):
        assert np.isfinite(float(loss(labels, RNG.normal(size=(4, 3)))))


@pytest.mark.parametrize("source", [
    BATCH_ALL,
    "sum(pair_dist(y_pred, axis=-2) - pair_dist(y_pred), axis=(-2, -1))",
    "mean(pair_sqdist(y_pred, axis=-2)*pair_eq(y_true))",
    "sum(relu(max(pair_dist(y_pred, axis=-2) - pair_dist(y_pred), axis=-1)), axis=-2)",
    "sum(exp(pair_dist(y_pred, axis=-2)), axis=-2)",  # constant along k: one number too
], ids=["batch-all", "sum over (j, k)", "mean", "max over k, sum over j", "sum over j"])
def test_a_fully_reduced_triple_loss_is_one_number_per_sample(source) -> None:
    labels, x = np.array([0, 1, 0, 1, 2]), RNG.normal(size=(5, 3))
    loss = lossdsl.compile(source, dtype="float64", reduction="none")
    assert np.asarray(loss(labels, x)).shape == (5,)


def test_partly_reduced_triples_keep_their_axes() -> None:
    labels, x = np.array([0, 1, 0, 1, 2]), RNG.normal(size=(5, 3))
    for source, shape in [("pair_dist(y_pred, axis=-2)*pair_dot(y_pred)", (5, 5, 5)),
                          ("max(pair_dist(y_pred, axis=-2) - pair_dist(y_pred), axis=-1)",
                           (5, 5)),
                          ("sum(pair_dist(y_pred, axis=-2)*pair_dot(y_pred), axis=-2)", (5, 5)),
                          ("pair_dist(y_pred, axis=-2) - mean(pair_dot(y_pred), axis=0)",
                           (5, 5, 5))]:
        loss = lossdsl.compile(source, dtype="float64", reduction="none")
        assert np.asarray(loss(labels, x)).shape == shape, source


# ---------------------------------------------------------------- the exported module

@pytest.mark.parametrize("source", [
    BATCH_ALL, "sum(y_true*pair_dist(y_pred, axis=-2) - pair_dist(y_pred)^2, axis=(-2, -1))"],
    ids=["batch-all", "by hand"])
def test_the_exported_module_agrees_on_a_triple_loss(tmp_path, source) -> None:
    labels, x = np.array([0.0, 1.0, 0.0, 1.0, 2.0, 0.0]), RNG.normal(size=(6, 3))
    compiled = lossdsl.compile(source, dtype="float64")
    exported = Exported(source, {}, Path(tmp_path)).loss
    for shape in [(6,), (6, 1)]:
        expected = tape_value_and_gradient(lambda t, p: compiled(t, p), labels.reshape(shape), x)
        got = tape_value_and_gradient(lambda t, p: exported(t, p), labels.reshape(shape), x)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- regressions
# Minimal reproductions of what the generated test found at 00b9cc2, all fixed since: a
# reduction read a pair value placed (batch, batch, 1) as if it were full size (D1, and the
# derived tie counts D1s and check_gradients' formulas D3); the symbolic backward pass
# refused its own upstream of a per-sample output that keeps a triple's axis (D2); an input
# read directly was not counted as constant along a triple (D4); abs of a power with a
# fractional exponent was an internal error (D5, not triples).

SMALL_LABELS, SMALL_X = np.array([0.0, 1.0, 0.0, 2.0]), RNG.normal(size=(4, 2))


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("source", [
    "sum(pair_dist(y_pred, axis=-2), axis=(-2, -1))",
    "sum(pair_dist(y_pred, axis=-2))",
    "sum(where(pair_dist(y_pred, axis=-2) > 1, 1, 0), axis=(-2, -1))",
    "sum(pair_dist(y_pred), axis=(-2, -1)) + 0*pair_dist(y_pred, axis=-2)",
    "sum(mean(pair_dist(y_pred), axis=-1) + pair_dist(y_pred, axis=-2), axis=(-2, -1))",
    # one axis, in a mean over the other (one number per sample: not D2)
    "mean(logsumexp(pair_dist(y_pred, axis=-2), axis=-1), axis=-2)",
    "mean(logsumexp(pair_dist(y_pred) + 0*pair_dist(y_pred, axis=-2), axis=-2), axis=-1)",
    "mean(prod(exp(pair_dist(y_pred, axis=-2)), axis=-1), axis=-2)",
    "mean(norm(pair_dist(y_pred, axis=-2), axis=-1), axis=-2)",
])
def test_a_counting_reduction_along_an_axis_its_argument_is_constant_along(source, gradient) -> None:
    program = ir.parse_source(source)
    reference = NumpyInterpreter(program, SMALL_LABELS, SMALL_X, {}).run()
    loss = lossdsl.compile(source, dtype="float64", gradient=gradient)
    value, grad = tape_value_and_gradient(lambda t, p: loss(t, p), SMALL_LABELS, SMALL_X)
    np.testing.assert_allclose(value, reference.mean(), rtol=1e-10)
    fine = _central_differences(program, {}, SMALL_LABELS, SMALL_X, 1e-6)
    np.testing.assert_allclose(grad, fine, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("source", [
    "max(pair_dist(y_pred, axis=-2) + 0*pair_dot(y_pred), axis=(-2, -1))",
    "min(pair_dot(y_pred) + 0*pair_dist(y_pred, axis=-2), axis=(-2, -1))"])
def test_the_symbolic_gradient_of_a_max_over_both_axes(source) -> None:
    program = ir.parse_source(source)
    loss = lossdsl.compile(source, dtype="float64", gradient="symbolic")
    value, grad = tape_value_and_gradient(lambda t, p: loss(t, p), SMALL_LABELS, SMALL_X)
    np.testing.assert_allclose(value, NumpyInterpreter(program, SMALL_LABELS, SMALL_X,
                                                       {}).run().mean(), rtol=1e-10)
    fine = _central_differences(program, {}, SMALL_LABELS, SMALL_X, 1e-6)
    np.testing.assert_allclose(grad, fine, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("source", [
    "sum(pair_dist(y_pred, axis=-2), axis=-1)", "pair_dist(y_pred, axis=-2)*pair_dot(y_pred)"])
def test_the_symbolic_gradient_of_a_partly_reduced_triple(source) -> None:
    autodiff = lossdsl.compile(source, dtype="float64")
    symbolic = lossdsl.compile(source, dtype="float64", gradient="symbolic")
    expected = tape_value_and_gradient(lambda t, p: autodiff(t, p), SMALL_LABELS, SMALL_X)
    got = tape_value_and_gradient(lambda t, p: symbolic(t, p), SMALL_LABELS, SMALL_X)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_check_gradients_of_a_max_over_j() -> None:
    source = "max(mean(pair_dist(y_pred), axis=-1) + pair_dist(y_pred, axis=-2), axis=-2)"
    report = lossdsl.check_gradients(lossdsl.compile(source, dtype="float64"), SMALL_LABELS,
                                     SMALL_X)
    assert report.passed, str(report)


def test_check_gradients_of_a_parameter_of_a_triple() -> None:
    report = lossdsl.check_gradients(lossdsl.compile("-beta*pair_dist(y_pred, axis=-2) + "
                                                     "pair_sqdist(y_pred)", beta=1.5,
                                                     dtype="float64"), SMALL_LABELS, SMALL_X)
    assert report.passed, str(report)


def test_abs_of_a_power_with_a_fractional_exponent() -> None:
    loss = lossdsl.compile("abs(pow(2, sigmoid(y_pred)^1.5))", dtype="float64", reduction="none")
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_allclose(np.asarray(loss(np.zeros_like(x), x)),
                               2.0 ** ((1.0 / (1.0 + np.exp(-x))) ** 1.5), rtol=1e-12)


def test_a_reduction_counts_an_input_as_constant_along_the_triple() -> None:
    per_sample = lossdsl.compile("sum(y_true*pair_dist(y_pred, axis=-2), axis=-2)",
                                 dtype="float64", reduction="none")
    without = lossdsl.compile("sum(pair_dist(y_pred, axis=-2), axis=-2)", dtype="float64",
                              reduction="none")
    assert np.asarray(without(SMALL_LABELS, SMALL_X)).shape == (4,)
    assert np.asarray(per_sample(SMALL_LABELS, SMALL_X)).shape == (4,)


@pytest.mark.parametrize("true_shape, pred_shape", [((4,), (4,)), ((4, 1), (4,)), ((4,), (4, 1))])
def test_one_number_per_sample_of_rank_1_reads_next_to_a_triple(true_shape, pred_shape) -> None:
    """(batch,) is one number per sample too (it was refused, its last axis being the batch)."""
    loss = lossdsl.compile("sum(y_true*pair_dist(y_pred, axis=-2), axis=-2)", dtype="float64",
                           reduction="none")
    t, x = SMALL_LABELS.reshape(true_shape), SMALL_X[:, :1].reshape(pred_shape)
    d = _distances(SMALL_X[:, :1])
    np.testing.assert_allclose(np.asarray(loss(t, x)), SMALL_LABELS * d.sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_a_weight_per_sample_weights_the_anchor_of_its_rows(gradient) -> None:
    """A per-sample loss that keeps a triple's rows, (batch, batch): Keras lines a (batch,)
    weight up with the last axis; lossdsl gives it to the sample, the row's anchor."""
    loss = lossdsl.compile("pair_dist(y_pred, axis=-2) - 2*pair_dist(y_pred)", dtype="float64",
                           reduction="sum", gradient=gradient)
    d, w = _distances(SMALL_X), np.array([1.0, 0.0, 0.0, 0.0])
    per_sample = d[:, :, None] - 2 * d[:, None, :]  # [a, j, k]: d(a, j) - 2 d(a, k)
    expected = float((w[:, None, None] * per_sample).sum())  # only anchor 0's rows
    np.testing.assert_allclose(float(loss(SMALL_LABELS, SMALL_X, sample_weight=w)), expected,
                               rtol=1e-12)
    assert abs(expected - float((w[None, None, :] * per_sample).sum())) > 1e-3  # the other reading


def test_a_triple_loss_trains_in_a_graph_with_an_unknown_batch_size() -> None:
    """The symbolic backward pass's upstream keeps the output's rows, (batch, batch): it was
    checked at run time as an input read next to triples and refused."""
    import tensorflow as tf

    loss = lossdsl.compile("sum(pair_dist(y_pred, axis=-2)*pair_dot(y_pred), axis=-2)",
                           dtype="float64", gradient="symbolic")
    spec = tf.TensorSpec([None, None], tf.float64)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float64), spec])
    def value_and_gradient(t, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(t, x)
        return value, tape.gradient(value, x)

    got = value_and_gradient(SMALL_LABELS, SMALL_X)
    expected = tape_value_and_gradient(lambda t, p: loss(t, p), SMALL_LABELS, SMALL_X)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-12, atol=1e-14)
