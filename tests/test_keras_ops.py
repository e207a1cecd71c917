"""The ``keras.ops`` interpreter of the plan, on whichever Keras backend runs the tests.

Marked ``backends``: tests/run_all.sh runs this module on TensorFlow, JAX and
PyTorch, each in its own process. On TensorFlow it also compares the
``keras.ops`` interpreter with the TF runner, node kind by node kind.

- it handles exactly the kinds of the plan, and every function of the table has a
  ``keras.ops`` form;
- each kind computes SymPy's value at a point;
- the functions ``keras.ops`` lacks (``xlogy``, ``xlog1py``, ``xdivy``) keep the
  ``x == 0`` rule with finite gradients, ties and bounds send the gradient where
  TF's do, and the double-where guard holds (JAX's and PyTorch's ``where`` pass
  NaN gradients from an untaken branch as TF's does);
- ``gradient="symbolic"`` is the backend's autodiff of the same loss, and on JAX
  its second derivative is autodiff's (``jax.custom_jvp``).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import sympy

import lossdsl
from backend_support import BACKEND, value_and_gradient
from lossdsl.backends.keras_ops import run
from lossdsl.backends.keras_ops.functions import keras_function
from lossdsl.lower import plans
from lossdsl.lower.plan import KINDS
from lossdsl.ops import OPS
from lossdsl.symbolic.counts import Count
from test_plan import ALPHA, FORMULAS, ONE_SAMPLE, POINT, TABLE, Y_PRED, Y_TRUE

pytestmark = pytest.mark.backends


def test_the_interpreter_handles_exactly_the_kinds_of_the_table() -> None:
    assert run.HANDLED_KINDS == set(KINDS)


@pytest.mark.parametrize("op", [op for op in OPS if op.tf is not None], ids=lambda op: op.name)
def test_every_function_of_the_table_has_a_keras_form(op) -> None:
    assert callable(keras_function(op.keras_path))


@pytest.mark.parametrize("kind", sorted(FORMULAS))
def test_each_kind_computes_the_formulas_value(kind: str) -> None:
    formula = FORMULAS[kind]
    plan = plans.plan_of({"out": (formula, "elementwise")}, TABLE, Y_PRED, TABLE)
    assert kind in plan.kinds()
    inputs = {"y_true": keras.ops.convert_to_tensor([[POINT[Y_TRUE]]], "float32"),
              "y_pred": keras.ops.convert_to_tensor([[POINT[Y_PRED]]], "float32")}
    alpha = keras.ops.convert_to_tensor(POINT[ALPHA], "float32")
    got = run.Runner(plan).run(inputs, {ALPHA: alpha})["out"]
    reduced = formula.xreplace({s: TABLE[s].arg for s in formula.free_symbols if s in TABLE})
    value = reduced.xreplace(ONE_SAMPLE).xreplace({Count(None): 1}).subs(POINT)
    expected = float(bool(value)) if isinstance(value, sympy.logic.boolalg.BooleanAtom) \
        else float(value)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got).astype("float64"), [[expected]],
                               rtol=1e-6)


# (source, y_true, y_pred, value, gradient w.r.t. y_pred): worked out by hand, TF's conventions.
AT_THE_EDGES = [
    ("sum(xlogy(y_true, y_pred))", [0.0, 2.0], [0.0, 1.0], 0.0, [0.0, 2.0]),
    ("sum(xlog1py(y_true, y_pred))", [0.0, 3.0], [-1.0, 0.0], 0.0, [0.0, 3.0]),
    ("sum(xdivy(y_true, y_pred))", [0.0, 2.0], [0.0, 4.0], 0.5, [0.0, -0.125]),
    ("sum(maximum(y_pred, y_true))", [1.0, 0.0], [1.0, 2.0], 3.0, [1.0, 1.0]),  # tie: to a
    ("sum(minimum(y_true, y_pred))", [1.0, 3.0], [1.0, 2.0], 3.0, [0.0, 1.0]),  # tie: to a
    ("sum(clip(y_pred, 0, 1))", [0.0, 0.0], [0.0, 1.0], 1.0, [1.0, 1.0]),  # bounds included
    ("sum(relu(y_pred))", [0.0, 0.0], [0.0, 2.0], 2.0, [0.0, 1.0]),
    ("sum(abs(y_pred))", [0.0, 0.0], [0.0, -2.0], 2.0, [0.0, -1.0]),
    ("sum(where(y_pred > 0, log(y_pred), 0))", [0.0, 0.0], [0.0, 2.0], float(np.log(2.0)),
     [0.0, 0.5]),  # the double-where guard: no NaN from the untaken log(0)
    ("sum(where(y_pred > 0, sqrt(y_pred), y_pred))", [0.0, 0.0], [0.0, 4.0], 2.0, [1.0, 0.25]),
]


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
@pytest.mark.parametrize("source, y_true, y_pred, value, expected", AT_THE_EDGES,
                         ids=[case[0] for case in AT_THE_EDGES])
def test_edges_follow_the_rules_the_gradients_are_derived_with(
        source: str, y_true: list, y_pred: list, value: float, expected: list, gradient: str
) -> None:
    loss = lossdsl.compile(source, gradient=gradient, reduction="sum")
    got_value, got_gradient = value_and_gradient(loss, np.array([y_true]), np.array([y_pred]))
    np.testing.assert_allclose(got_value, value, rtol=1e-6)
    np.testing.assert_allclose(got_gradient, [expected], rtol=1e-6, atol=1e-7)


SYMBOLIC_CASES = [
    "mean((y_true - y_pred)^2)",
    "-sum(y_true*log_softmax(y_pred))",
    "1 - (2*sum(y_true*y_pred) + 1)/(sum(y_true) + sum(y_pred) + 1)",
    "mean(y_pred, axis=-1) * mean(y_true*y_pred)",  # not separable: the seeded backward pass
]


@pytest.mark.parametrize("source", SYMBOLIC_CASES)
def test_symbolic_mode_is_the_backends_autodiff(source: str) -> None:
    rng = np.random.default_rng(3)
    y_true = rng.uniform(0, 1, (4, 3, 5))
    y_pred = rng.uniform(-1, 1, (4, 3, 5))
    autodiff = value_and_gradient(lossdsl.compile(source, dtype="float64"), y_true, y_pred,
                                  "float64")
    symbolic = value_and_gradient(lossdsl.compile(source, gradient="symbolic", dtype="float64"),
                                  y_true, y_pred, "float64")
    np.testing.assert_allclose(symbolic[0], autodiff[0], rtol=1e-12)
    np.testing.assert_allclose(symbolic[1], autodiff[1], rtol=1e-9, atol=1e-12)
    assert np.abs(autodiff[1]).max() > 0  # a comparison of zeros would prove nothing


@pytest.mark.skipif(BACKEND != "jax", reason="jax.custom_jvp: JAX only")
@pytest.mark.parametrize("source", SYMBOLIC_CASES[:3])
def test_symbolic_mode_keeps_second_derivatives_on_jax(source: str) -> None:
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(4)
    y_true = jnp.asarray(rng.uniform(0, 1, (2, 3)), "float32")
    y_pred = jnp.asarray(rng.uniform(-1, 1, (2, 3)), "float32")
    hessians = []
    for mode in ("autodiff", "symbolic"):
        loss = lossdsl.compile(source, gradient=mode)
        hessians.append(np.asarray(jax.hessian(lambda p: loss(y_true, p))(y_pred)))
    np.testing.assert_allclose(hessians[1], hessians[0], rtol=1e-4, atol=1e-6)
    assert np.abs(hessians[0]).max() > 0


AUTODIFF = {"tensorflow": "tf.GradientTape", "jax": "jax.grad", "torch": "torch.autograd"}


def test_the_check_compares_with_the_backends_autodiff() -> None:
    report = lossdsl.check_gradients("mean(softplus(y_pred) - y_true*y_pred)")
    assert report.passed, report.reason
    assert report.points > 0 and report.autodiff == AUTODIFF[BACKEND]
    assert str(report).startswith(f"symbolic gradient and {AUTODIFF[BACKEND]} agree")


@pytest.mark.parametrize("source", ["mean(maximum(y_pred, 0.5))", "mean(minimum(y_pred, 0.5))",
                                    "mean(clip(y_pred, 0.1, 0.9))", "mean(maximum(0.5, y_pred))"])
def test_a_nan_prediction_gives_a_nan_loss(source: str) -> None:
    """As TF's maximum/clip: a diverged model must not report a finite loss."""
    loss = lossdsl.compile(source)
    value = loss(np.array([[1.0, 0.0]], "float32"), np.array([[np.nan, 0.3]], "float32"))
    assert np.isnan(keras.ops.convert_to_numpy(value))


# Rank-1 inputs: a sample is one element, so a reduction reduces over nothing.
RANK_1 = [("sum(y_pred)", [-3.0, 2.0]), ("mean(y_pred)", [-3.0, 2.0]),
          ("max(y_pred)", [-3.0, 2.0]), ("logsumexp(y_pred)", [-3.0, 2.0]),
          ("prod(y_pred)", [-3.0, 2.0]), ("var(y_pred)", [0.0, 0.0]), ("std(y_pred)", [0.0, 0.0]),
          ("norm(y_pred)", [3.0, 2.0])]


@pytest.mark.parametrize("source, expected", RANK_1)
def test_reductions_of_a_one_element_sample(source: str, expected: list) -> None:
    loss = lossdsl.compile(source, reduction="none")
    value = loss(np.array([1.0, 2.0], "float32"), np.array([-3.0, 2.0], "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(value), expected, rtol=1e-6)


@pytest.mark.skipif(BACKEND != "jax", reason="x64 is a JAX setting")
def test_float64_without_x64_on_jax_is_a_warning() -> None:
    import jax

    if jax.config.jax_enable_x64:
        pytest.skip("x64 is on in this process")
    with pytest.warns(lossdsl.LossDSLWarning, match="JAX_ENABLE_X64"):
        lossdsl.compile("mean((y_true - y_pred)^2)", dtype="float64")


@pytest.mark.skipif(BACKEND != "torch", reason="torch.func is PyTorch's")
@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_torch_func_transforms_work_in_both_modes(gradient: str) -> None:
    import torch

    loss = lossdsl.compile("mean((y_true - y_pred)^2)", gradient=gradient)
    y_true, y_pred = torch.rand(4, 3, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64)
    per_sample = torch.func.jacrev(lambda p: loss.call(y_true, p))(y_pred)
    expected = torch.zeros(4, 4, 3, dtype=torch.float64)
    for i in range(4):
        expected[i, i] = 2 * (y_pred[i] - y_true[i]) / 3
    np.testing.assert_allclose(per_sample.numpy(), expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_fit_trains_saves_and_reloads(gradient: str, tmp_path) -> None:
    """Keras's own training step (jitted on JAX), twice: a loss must not break a retrace."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (256, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32")) ** 2
    loss = lossdsl.compile("mean((y_true - y_pred)^2) + lam*mean(abs(y_pred))", lam=0.01,
                           gradient=gradient)
    metric = lossdsl.metric("mean(abs(y_true - y_pred))", name="mae")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.02), loss=loss, metrics=[metric])
    first = model.fit(x, y, epochs=3, batch_size=64, verbose=0).history["loss"]
    second = model.fit(x, y, epochs=3, batch_size=64, verbose=0).history["loss"]
    assert np.all(np.isfinite(first + second)) and second[-1] < first[0]
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(reloaded.evaluate(x, y, verbose=0),
                               model.evaluate(x, y, verbose=0), rtol=1e-5)


@pytest.mark.parametrize("gradient", ["autodiff", "symbolic"])
def test_shapes_that_do_not_broadcast_are_a_located_lossdsl_error(gradient: str) -> None:
    loss = lossdsl.compile("mean((y_true - y_pred)^2)", gradient=gradient)
    with pytest.raises(lossdsl.DSLShapeError, match=r"\(4, 3\) and \(4, 5\)") as raised:
        loss(np.ones((4, 3), "float32"), np.ones((4, 5), "float32"))
    assert raised.value.hint
