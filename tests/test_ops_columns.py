"""Each column of :data:`lossdsl.ops.OPS` says what the function does, checked by behaviour.

The tables other stages read (domain conditions, kinks, infinity warnings, NumPy
evaluation, reduction derivatives) are derived from these columns, so a column
that is wrong is wrong everywhere. Each is checked here against an independent
account of the function: SymPy's value of the row's ``sympy``/``elementary``
form, the tests' own NumPy forms (``tests/dsl_strategies.py``, written from
the math), and finite differences.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest
import sympy
from dsl_strategies import DOMAINS, NUMPY, REFERENCE_FORMS, rows_without_a_reference_form

import lossdsl
from lossdsl.ops import BY_SYMPY_HEAD, OPS, DSLFunction
from lossdsl.ops.numpy_forms import numpy_form

POINTS = [(-1.5, 0.5, 2.0), (0.0, 0.25, 0.75), (0.5, 0.0, 1.0), (3.0, 2.0, -0.5),
          (-0.5, -2.0, 0.3), (0.7, 0.7, 0.7), (1.0, -1.0, 1e-3), (40.0, -30.0, 0.0)]
ELEMENTWISE = [op for op in OPS if op.kind == "elementwise"]
HEADS = [op for op in ELEMENTWISE if op in BY_SYMPY_HEAD.values()]  # they survive lowering
STEP = 1e-6


def _ids(op):
    return op.name


def _sympy_value(op, args: tuple[float, ...]) -> sympy.Basic:
    numbers = [sympy.Float(a) for a in args]
    if op.name == "where":
        numbers[0] = sympy.Float(args[0]) > 0  # its first argument is a condition
    # Through the row's `sympy` form; lossdsl's own functions evaluate by `elementary`.
    return sympy.sympify(op.sympy(*numbers)).evalf()


def _numpy_value(form, op, args: tuple[float, ...]) -> float:
    values = [np.float64(a) for a in args]
    if op.name == "where":
        values[0] = values[0] > 0
    with np.errstate(all="ignore"):
        return float(form(*values))


# ---------------------------------------------------------------- numpy

def test_every_row_names_a_numpy_form_that_resolves():
    for op in OPS:
        assert callable(numpy_form(op)), op.name
        assert not op.numpy.startswith("lossdsl.") or op.numpy.startswith("lossdsl.ops."), \
            f"{op.name}: a NumPy form lives in lossdsl.ops (the bottom layer)"


@pytest.mark.parametrize("op", [op for op in ELEMENTWISE if not op.by_position], ids=_ids)
def test_the_numpy_form_is_the_value_of_the_sympy_form(op):
    for point in POINTS:
        args = point[:op.arity]
        expected = _sympy_value(op, args)
        ours = _numpy_value(numpy_form(op), op, args)
        if expected.is_extended_real and expected.is_finite:
            assert ours == pytest.approx(float(expected), rel=1e-12, abs=1e-15), (op.name, args)
        else:
            assert not np.isfinite(ours), (op.name, args, expected)


def test_the_numpy_form_of_one_hot_compares_the_label_with_the_position():
    labels = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(numpy_form(BY_SYMPY_HEAD[type(lossdsl.ops.one_hot(1))])(labels),
                                  [[0, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize("op", [op for op in OPS if op.kind in ("reduction", "normalizer")],
                         ids=_ids)
@pytest.mark.parametrize("axis", [None, (1,), (2,), (-1,), (1, 2)])
def test_the_numpy_form_of_a_reduction_is_the_tests_own(op, axis):
    x = np.random.default_rng(0).normal(size=(2, 3, 4)) * 5
    axes = tuple(range(1, 3)) if axis is None else tuple(a % 3 for a in axis)
    expected = REFERENCE_FORMS[op.kind][op.name](x, axes)
    np.testing.assert_allclose(numpy_form(op)(x, axis), expected, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------- domain

def _grid_points(op) -> list[tuple[float, ...]]:
    """Points over a grid where the arguments the pole does not involve are nonzero
    (a guard such as xlogy's x = 0 makes the value finite whatever the domain says)."""
    symbols = sympy.symbols(f"a:{op.arity}", real=True)
    involved = op.domain.pole(*symbols).free_symbols
    grid = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
    return [p for p in itertools.product(grid, repeat=op.arity)
            if all(v != 0 or s in involved for s, v in zip(symbols, p))]


@pytest.mark.parametrize("op", [op for op in HEADS if op.domain is not None], ids=_ids)
def test_the_domain_holds_exactly_where_the_value_is_finite_and_the_pole_is_infinite(op):
    symbols = sympy.symbols(f"a:{op.arity}", real=True)
    requires, pole = op.domain.requires(*symbols), op.domain.pole(*symbols)
    for point in _grid_points(op):
        at = dict(zip(symbols, map(sympy.Float, point)))
        value = _numpy_value(NUMPY[op.name], op, point)
        assert bool(requires.xreplace(at)) == np.isfinite(value), (op.name, point, value)
        if pole.xreplace(at) == 0:
            assert np.isinf(value), (op.name, point, value)


@pytest.mark.parametrize("op", HEADS, ids=_ids)
def test_a_row_whose_value_is_not_finite_somewhere_has_a_domain(op):
    if op.name in ("where", "one_hot"):
        pytest.skip("not a function of numbers in every argument")
    values = [_numpy_value(NUMPY[op.name], op, p)
              for p in itertools.product((-2.0, -1.0, -0.5, 0.0, 0.5, 2.0), repeat=op.arity)]
    assert (op.domain is not None) == (not np.all(np.isfinite(values))), op.name


def test_the_tests_generator_keeps_every_row_with_a_domain_inside_it():
    symbols = sympy.symbols("a:3", real=True)
    for op in OPS:
        if op.domain is not None:
            pole = op.domain.pole(*symbols[:op.arity]).free_symbols
            positions = {i for i, s in enumerate(symbols) if s in pole}
            assert positions <= set(DOMAINS.get(op.name, ())), op.name


# ---------------------------------------------------------------- kinks

def _along_first(op, others: tuple[float, ...]):
    def f(x: float) -> float:
        return _numpy_value(NUMPY[op.name], op, (x, *others))
    return f


def _slopes(f, x: float) -> tuple[float, float, float]:
    """Left slope, right slope, and the jump of the value across x."""
    here = f(x)
    return (here - f(x - STEP)) / STEP, (f(x + STEP) - here) / STEP, abs(f(x + STEP) - f(x - STEP))


@pytest.mark.parametrize("op, index", [(op, i) for op in HEADS for i in range(len(op.kinks))],
                         ids=lambda v: v.name if hasattr(v, "name") else str(v))
def test_a_declared_kink_is_a_point_where_the_function_is_not_differentiable(op, index):
    kink = op.kinks[index]
    x = sympy.Symbol("x", real=True)
    others = (0.3, 0.8)[:op.arity - 1]
    a, b = kink.at(x, *map(sympy.Float, others))
    (at,) = sympy.solve(a - b, x)
    f = _along_first(op, others)
    left, right, jump = _slopes(f, float(at))
    assert abs(left - right) > 0.1 or jump > 1e-3, (op.name, float(at), left, right)
    for beside in (float(at) - 0.05, float(at) + 0.05):  # and smooth just beside it
        left, right, jump = _slopes(f, beside)
        assert left == pytest.approx(right, abs=1e-4) and jump < 1e-3, (op.name, beside)
    condition = sympy.Ne(*kink.at(x, *map(sympy.Float, others)))
    assert condition.xreplace({x: at}) is sympy.false


@pytest.mark.parametrize("op", HEADS, ids=_ids)
def test_a_row_that_is_not_smooth_somewhere_has_a_kink(op):
    if op.name in ("where", "one_hot"):
        pytest.skip("not a function of numbers in every argument")
    kinked = False
    for position in range(op.arity):
        for x in np.linspace(-2.0, 2.0, 401):
            args = [0.6, 0.3, 0.8][:op.arity]
            args[position] = x

            def f(v: float) -> float:
                at = tuple(args[:position] + [v] + args[position + 1:])
                return _numpy_value(NUMPY[op.name], op, at)
            left, right, jump = _slopes(f, x)
            beside = abs(f(x + 4 * STEP) - f(x + 2 * STEP)) + abs(f(x - 2 * STEP) - f(x - 4 * STEP))
            if np.isfinite([left, right]).all() and (
                    abs(left - right) > 1e-2 * (1 + abs(right)) or jump > max(1e-3, 10 * beside)):
                kinked = True
    assert bool(op.kinks) == kinked, op.name


# ---------------------------------------------------------------- derivatives

def _reduce_with_rule(op, x: np.ndarray) -> np.ndarray:
    """d op(x) / d x_i for each i, from the row's rule."""
    element, value = sympy.Symbol("element", real=True), sympy.Symbol("value", real=True)
    reduced = float(numpy_form(op)(x[None, :], -1).ravel()[0])

    def total(expr):
        return sympy.Add(*(expr.xreplace({element: sympy.Float(v)}) for v in x))

    (rule,) = op.derivatives
    local = rule(element, value, sympy.Integer(x.size), total)
    local = local.xreplace({value: sympy.Float(reduced)})
    return np.array([float(local.xreplace({element: sympy.Float(v)})) for v in x])


@pytest.mark.parametrize("op", [op for op in OPS if op.kind == "reduction"], ids=_ids)
def test_a_reductions_derivative_rule_is_its_slope(op):
    x = np.array([0.3, -1.2, 2.5, 0.9, -0.4])
    ours = _reduce_with_rule(op, x)
    form = numpy_form(op)
    for i in range(x.size):
        up, down = x.copy(), x.copy()
        up[i] += STEP
        down[i] -= STEP
        slope = (form(up[None, :], -1) - form(down[None, :], -1)).ravel()[0] / (2 * STEP)
        assert ours[i] == pytest.approx(slope, abs=1e-6), (op.name, i)
    if op.name in ("max", "min"):  # a tie shares the gradient equally, as TF does
        tied = np.array([2.5, 2.5, -2.5, -2.5, 0.0])
        shares = _reduce_with_rule(op, tied)
        assert shares.sum() == pytest.approx(1.0) and len(set(shares[shares > 0])) == 1


@pytest.mark.parametrize("op", [op for op in HEADS if op.derivatives
                                and not issubclass(op.sympy, DSLFunction)], ids=_ids)
def test_the_derivative_of_a_sympy_head_is_its_slope_off_its_kinks(op):
    x = sympy.Symbol("x", real=True)
    (rule,) = op.derivatives
    f = _along_first(op, ())
    for point in (-1.3, -0.2, 0.4, 2.0):
        left, right, _ = _slopes(f, point)
        assert float(rule(x).xreplace({x: sympy.Float(point)})) == pytest.approx(right, abs=1e-5)


def test_abs_and_sign_of_a_formula_differentiate_as_real_functions():
    from lossdsl.symbolic.derive import _real_diff

    y = sympy.Symbol("y")  # not known to be real: SymPy alone would go complex
    assert _real_diff(sympy.Abs(sympy.log(y)), y) == sympy.sign(sympy.log(y)) / y
    assert _real_diff(sympy.sign(sympy.log(y)) * y, y) == sympy.sign(sympy.log(y))


# ---------------------------------------------------------------- latex, tf, layering

def test_a_latex_template_is_given_exactly_for_the_heads_lossdsl_prints():
    for op in OPS:
        own = isinstance(op.sympy, type) and issubclass(op.sympy, DSLFunction)
        assert bool(op.latex) == (own or op.kind in ("reduction", "pairwise")), op.name
        if op.latex:
            op.latex.format(*("x" * op.arity))  # one slot per argument, braces escaped


def test_only_functions_that_lower_to_others_have_no_tensorflow_form():
    assert {op.name for op in OPS if op.tf is None} == \
        {op.name for op in OPS if op.kind == "normalizer"}


def test_ops_imports_nothing_above_it():
    for path in Path(lossdsl.ops.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith("tensorflow"), (path.name, name)
                assert not name.startswith("lossdsl") or name.startswith("lossdsl.ops"), \
                    (path.name, name)


@pytest.mark.parametrize("op", [op for op in OPS if op.kind == "pairwise"], ids=_ids)
def test_the_numpy_form_of_a_pair_function_is_the_tests_own(op):
    x = np.random.default_rng(0).normal(size=(6, 4))
    x[3] = x[1]  # equal rows: pair_eq is 1 off the diagonal, the distance 0
    if op.arity == 0:
        np.testing.assert_array_equal(numpy_form(op)(6), REFERENCE_FORMS["pairwise"][op.name](6))
        return
    expected = REFERENCE_FORMS["pairwise"][op.name](x)
    np.testing.assert_allclose(numpy_form(op)(x), expected, rtol=1e-12, atol=1e-12)
    assert expected.shape == (6, 6)


def test_the_tests_interpreter_has_a_reference_form_for_every_row():
    assert not rows_without_a_reference_form()
