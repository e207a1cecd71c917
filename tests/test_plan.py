"""The plan is data; the TF runner and the text printer interpret every kind of node it has.

- the kinds table (``lossdsl.lower.plan.KINDS``) is exactly what each backend handles;
- for every kind a formula builds a node of it, and the TF runner's value is the
  formula's value (SymPy's, at a point);
- every plan consumer (loss, symbolic gradient, penalty, gradient check, exporter)
  goes through the one builder ``lossdsl.lower.plans.plan_of``;
- lower/ and the printer load no TensorFlow.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sympy

import lossdsl
from lossdsl.analysis.analyze import analyze, compile_expression
from lossdsl.backends import text
from lossdsl.backends.tensorflow import run
from lossdsl.lower import plans
from lossdsl.lower.plan import KINDS
from lossdsl.ops import REGISTRY
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import ReductionTable

Y_PRED = sympy.Symbol("y_pred", real=True)
Y_TRUE = sympy.Symbol("y_true", real=True)
ALPHA = sympy.Symbol("alpha", real=True)
POINT = {Y_TRUE: 0.25, Y_PRED: 0.75, ALPHA: 1.5}

# One formula per kind (elementwise, so SymPy gives the expected value at POINT).
FORMULAS: dict[str, sympy.Basic] = {
    "input": Y_PRED,
    "parameter": ALPHA * Y_PRED,
    "constant": 2 * Y_PRED,
    "boolean": sympy.true,  # SymPy folds `true` out of conditions; a formula can still be one
    "count": Y_PRED / Count(None),
    "call": REGISTRY["softplus"].sympy(Y_PRED) + REGISTRY["clip"].sympy(Y_PRED, 0, Y_TRUE),
    "add": Y_PRED - Y_TRUE,
    "mul": Y_TRUE / Y_PRED,
    "power": Y_PRED ** 2 + Y_PRED ** Y_TRUE + Y_PRED ** 1.5,
    "where": sympy.Piecewise((Y_PRED, Y_PRED > Y_TRUE), (Y_TRUE, True)),
    "guarded_where": sympy.Piecewise((sympy.log(Y_PRED), Y_PRED > 0), (Y_PRED, True)),
    "given": sympy.Piecewise((sympy.sqrt(Y_PRED), Y_PRED > 0), (0, True)),
    "step": sympy.Heaviside(Y_PRED - Y_TRUE, sympy.Rational(1, 2)),
    "relation": sympy.Piecewise((1, sympy.Eq(Y_PRED, Y_TRUE)), (2, True)),
    "logic": sympy.Piecewise((1, sympy.And(Y_PRED > 0, Y_TRUE > 0, evaluate=False)), (2, True)),
    "not": sympy.Piecewise((1, sympy.Not(Y_PRED > Y_TRUE, evaluate=False)), (2, True)),
    "ite": sympy.Piecewise((1, sympy.ITE(Y_PRED > 0, Y_TRUE > 0, Y_TRUE < 0)), (2, True)),
    "sinh": sympy.sinh(Y_PRED),
}
# A reduction needs a table; a sample of one element reduces to itself.
TABLE = ReductionTable()
FORMULAS["reduction"] = TABLE.opaque("max", Y_PRED * Y_TRUE, None) + Y_PRED
# Pairs too; in a batch of one sample, pair_dot(y_pred) is y_pred^2, and the backward pass
# of sum(g * pair_dot(y_pred)) is 2*g*y_pred (the sample is the row and the column).
PAIR_DOT = TABLE.pair("pair_dot", Y_PRED)
FORMULAS["pair"] = PAIR_DOT * Y_TRUE
FORMULAS["pair_backward"] = TABLE.pair_backward(TABLE.pairs[PAIR_DOT], Y_TRUE) + Y_PRED
ONE_SAMPLE = {PAIR_DOT: Y_PRED**2, FORMULAS["pair_backward"] - Y_PRED: 2 * Y_TRUE * Y_PRED}


def test_every_backend_handles_exactly_the_kinds_of_the_table():
    assert run.HANDLED_KINDS == set(KINDS)
    assert text.HANDLED_KINDS == set(KINDS)


def test_the_formulas_cover_every_kind():
    kinds = set()
    for formula in FORMULAS.values():
        kinds |= plans.plan_of({"out": (formula, "elementwise")}, TABLE, Y_PRED, TABLE).kinds()
    assert kinds == set(KINDS)


@pytest.mark.parametrize("kind", sorted(FORMULAS))
def test_the_tf_runner_computes_each_kind_and_the_printer_prints_it(kind):
    import tensorflow as tf

    formula = FORMULAS[kind]
    plan = plans.plan_of({"out": (formula, "elementwise")}, TABLE, Y_PRED, TABLE)
    assert kind in plan.kinds()
    inputs = {"y_true": tf.constant([[POINT[Y_TRUE]]], tf.float64),
              "y_pred": tf.constant([[POINT[Y_PRED]]], tf.float64)}
    got = run.Runner(plan).run(inputs, {ALPHA: tf.constant(POINT[ALPHA], tf.float64)})["out"]
    reduced = formula.xreplace({s: TABLE[s].arg for s in formula.free_symbols if s in TABLE})
    reduced = reduced.xreplace(ONE_SAMPLE)
    value = reduced.xreplace({Count(None): 1}).subs(POINT)
    expected = float(bool(value)) if isinstance(value, sympy.logic.boolalg.BooleanAtom) \
        else float(value)
    np.testing.assert_allclose(np.asarray(got.numpy(), "float64"), [[expected]], rtol=1e-12)
    printed = text.print_plan(plan, {"alpha": "alpha"})
    assert printed.outputs["out"].startswith("tf.broadcast_to(")
    assert all(" = " in line for line in printed.lines)


def test_every_consumer_builds_its_plan_with_the_one_builder(monkeypatch):
    """check_gradients checks the plans the loss runs: same module, same builder."""
    calls = []
    original = plans.plan_of

    def spy(outputs, *args, **kwargs):
        calls.append(tuple(outputs))
        return original(outputs, *args, **kwargs)

    monkeypatch.setattr(plans, "plan_of", spy)
    source = "mean(-beta*y_true*log(sigmoid(y_pred + 0.123456)))"  # not cached by another test
    lossdsl.compile(source, beta=0.7, gradient="symbolic")
    lossdsl.check_gradients(source, beta=0.7)
    lossdsl.regularizer("0.5*gamma*sum(w^2) + 0.0123456", gamma=0.5)
    plans.export_plan(analyze(source))
    assert ("loss",) in calls and ("gradient",) in calls
    assert ("loss", "gradient", "d/beta") in calls


def test_the_check_differentiates_the_formula_the_loss_runs():
    """The check's loss output is the forward plan's fused formula (here: one mean, not two)."""
    source = "mean(-(y_true*log(sigmoid(y_pred)) + (1-y_true)*log(1-sigmoid(y_pred))))"
    compiled = compile_expression(source)
    forward, check = plans.forward_plan(compiled), plans.check_plan(compiled)
    assert forward.reduced == check.reduced
    assert [o.finish for o in check.outputs] == ["per_sample", "elementwise"]
    loss_of = {plan: plan.nodes[plan.outputs[0].index].expr for plan in (forward, check)}
    assert loss_of[forward] == loss_of[check]


def test_lower_and_the_printer_load_no_tensorflow():
    code = ("import sys; from lossdsl.analysis.analyze import analyze; "
            "from lossdsl.lower.plans import export_plan; "
            "from lossdsl.backends.text import print_plan; "
            "print_plan(export_plan(analyze('mean(where(y_pred > 0, log(y_pred), 1))')), {}); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow loaded'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_printed_plan_computes_what_the_runner_computes(tmp_path):
    """Every finish and a parameter, printed to a module and imported: the runner's numbers."""
    import importlib.util

    import tensorflow as tf

    source = "mean(where(y_pred > 0, alpha*log(y_pred), y_pred)^2) + sum(y_true*y_pred, axis=-1)"
    compiled = compile_expression(source, {"alpha": 1.5})
    plan = plans.check_plan(compiled)
    printed = text.print_plan(plan, {"alpha": "alpha"})
    body = "\n".join(f"    {line}" for line in printed.lines)
    outputs = ", ".join(f"{name!r}: {code}" for name, code in printed.outputs.items())
    path = tmp_path / "printed_plan.py"
    path.write_text(
        f"import tensorflow as tf\n{printed.support()}\n\n"
        "def outputs(y_true, y_pred, alpha):\n"
        "    dtype, rank, shape = y_pred.dtype, y_pred.shape.rank, tf.shape(y_pred)\n"
        f"{body}\n    return {{{outputs}}}\n", encoding="utf-8")
    spec = importlib.util.spec_from_file_location("printed_plan", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    y_true = tf.constant(rng.normal(size=(4, 3, 5)))
    y_pred = tf.constant(rng.normal(size=(4, 3, 5)))
    alpha = tf.constant(1.5, tf.float64)
    theirs = module.outputs(y_true, y_pred, alpha)
    ours = run.Runner(plan).run({"y_true": y_true, "y_pred": y_pred},
                                {sympy.Symbol("alpha", real=True): alpha})
    assert set(theirs) == set(ours) == {"loss", "gradient", "d/alpha"}
    for name in ours:
        np.testing.assert_allclose(theirs[name].numpy(), ours[name].numpy(), rtol=1e-12)
