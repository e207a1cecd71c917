"""Every table keyed by function covers every function, tested by behaviour.

Domains and kinks (``lossdsl.analysis.domains``), infinity warnings
(``lossdsl.symbolic.infinities``), NumPy evaluation (``lossdsl.boosting.numpy_eval``)
and the real derivatives of abs/sign (``lossdsl.symbolic.derive``) are read from
the columns of ``lossdsl.ops.OPS`` (checked column by column in test_ops_columns.py);
the double-where guard (``lossdsl.lower``) and the exporter's printer act on them
too. A row whose columns are wrong or missing would go unnoticed, so this file
derives what each must say from the function's own numbers, over a grid of inputs:

- a domain condition is reported exactly when the function is not finite somewhere;
- a kink is reported exactly when its one-sided derivatives disagree somewhere;
- the infinity warning fires exactly when the function is infinite somewhere in [0, 1];
- a ``where`` branch built on the function gets a finite gradient wherever it is not taken;
- the exported module computes the same value and gradient as ``lossdsl.compile``.

Each function is called with ``y_pred`` in one argument position and distinct
constants in the others. The NumPy forms are the test interpreter's
(``tests/dsl_strategies.py``), written from the README, not from lossdsl's code.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy
from dsl_strategies import NUMPY
from test_differential import Exported, _value_and_tape_gradient

import lossdsl
from lossdsl.analysis.analyze import analyze
from lossdsl.analysis.domains import find_conditions
from lossdsl.ops import OPS, DSLFunction

GRID = np.union1d(np.round(np.linspace(-3.0, 3.0, 601), 10), [-1.0, 0.0, 0.3, 0.6, 0.8, 1.0])
# The constants in the positions y_pred is not in: clip(0.6, 0.3, 0.8) has x inside its bounds.
OTHER_ARGUMENTS = ("0.6", "0.3", "0.8")
STEP = 1e-6


# Not elementwise in one argument: `where` takes a condition, `one_hot` a label.
NOT_ON_A_GRID = {"where": "its first argument is a condition",
                 "one_hot": "a label, compared with the element's position"}


def _cases() -> list[tuple[str, int]]:
    return [(op.name, position) for op in OPS
            if op.kind == "elementwise" and op.name not in NOT_ON_A_GRID
            for position in range(op.arity)]


def _call(name: str, position: int, arity: int, argument: str = "y_pred") -> str:
    args = list(OTHER_ARGUMENTS[:arity])
    args[position] = argument
    return f"{name}({', '.join(args)})"


def _numpy(name: str, position: int, arity: int, x: np.ndarray) -> np.ndarray:
    args = [np.float64(float(a)) for a in OTHER_ARGUMENTS[:arity]]
    args[position] = x
    with np.errstate(all="ignore"):
        return np.asarray(NUMPY[name](*args), np.float64) * np.ones_like(x)


def _arity(name: str) -> int:
    return next(op.arity for op in OPS if op.name == name)


CASES = _cases()
IDS = [f"{name}-arg{position}" for name, position in CASES]


def test_every_elementwise_function_is_on_the_grid_or_says_why_not():
    covered = {name for name, _ in CASES} | set(NOT_ON_A_GRID)
    assert covered == {op.name for op in OPS if op.kind == "elementwise"}
    assert set(NUMPY) >= {name for name, _ in CASES}


@pytest.mark.parametrize("name, position", CASES, ids=IDS)
def test_a_domain_condition_is_reported_exactly_where_the_function_is_not_finite(name, position):
    arity = _arity(name)
    values = _numpy(name, position, arity, GRID)
    conditions = find_conditions(analyze(f"mean({_call(name, position, arity)})"))
    domain = [c for c in conditions if c.kind == "domain" and "loss" in c.applies_to]
    if np.all(np.isfinite(values)):
        assert not domain, f"{name}: finite on the grid, yet {[str(c) for c in domain]}"
    else:
        assert domain, f"{name}: not finite at {GRID[~np.isfinite(values)][:3]}..., no condition"


@pytest.mark.parametrize("name, position", CASES, ids=IDS)
def test_a_kink_is_reported_exactly_where_the_one_sided_derivatives_differ(name, position):
    arity = _arity(name)
    here = _numpy(name, position, arity, GRID)
    left = (here - _numpy(name, position, arity, GRID - STEP)) / STEP
    right = (_numpy(name, position, arity, GRID + STEP) - here) / STEP
    with np.errstate(invalid="ignore"):
        smooth_here = np.isfinite(left) & np.isfinite(right)
        jumps = smooth_here & (np.abs(left - right) > 1e-2 * (1 + np.abs(right)))
        # A jump of the value itself (sign at 0) has equal one-sided slopes across it: it
        # is a step across x much larger than the slopes just beside x explain.
        def f(x: np.ndarray) -> np.ndarray:
            return _numpy(name, position, arity, x)

        step = np.abs(f(GRID + STEP) - f(GRID - STEP))
        beside = np.maximum(np.abs(f(GRID - 2 * STEP) - f(GRID - 4 * STEP)),
                            np.abs(f(GRID + 4 * STEP) - f(GRID + 2 * STEP)))
        jumps |= (step > 1e-3) & (step > 10 * beside)
    conditions = find_conditions(analyze(f"mean({_call(name, position, arity)})"))
    kinks = [c for c in conditions if c.kind == "kink"]
    if jumps.any():
        assert kinks, f"{name}: it or its derivative jumps at {GRID[jumps][:3]}, no kink reported"
    else:
        assert not kinks, f"{name}: smooth on the grid, yet {[str(c) for c in kinks]}"


@pytest.mark.parametrize("name, position", CASES, ids=IDS)
def test_the_infinity_warning_fires_exactly_where_the_function_is_infinite_on_0_1(name, position):
    arity = _arity(name)
    unit = GRID[(GRID >= 0) & (GRID <= 1)]
    infinite = np.isinf(_numpy(name, position, arity, unit))
    source = f"mean({_call(name, position, arity)})"
    warned = analyze(source).warnings
    if infinite.any():
        assert warned, f"{name}: infinite at y_pred = {unit[infinite][:3]}, no warning"
    else:
        assert not warned, f"{name}: finite on [0, 1], yet it warns: {warned}"


@pytest.mark.parametrize("name, position", CASES, ids=IDS)
def test_a_where_branch_on_the_function_has_a_finite_gradient_where_it_is_not_taken(
        name, position):
    arity = _arity(name)
    call = _call(name, position, arity)
    plain = lossdsl.compile(f"mean({call})", dtype="float64", reduction="none")
    y_true = np.zeros((GRID.size, 1))
    value, gradient = _value_and_tape_gradient(plain, y_true, GRID[:, None])
    bad = ~np.isfinite(value) | ~np.isfinite(gradient[:, 0])
    if not bad.any():
        pytest.skip(f"{call} and its gradient are finite on the grid: nothing to guard")
    threshold = GRID[bad].max()
    assert threshold < GRID.max(), f"{call} is not finite at the top of the grid"
    guarded = f"mean(where(y_pred > {float(threshold)!r}, {call}, y_pred))"
    for gradient_mode in ("autodiff", "symbolic"):
        loss = lossdsl.compile(guarded, dtype="float64", reduction="none", gradient=gradient_mode)
        _, gradient = _value_and_tape_gradient(loss, y_true, GRID[:, None])
        untaken = GRID <= threshold
        np.testing.assert_array_equal(gradient[untaken, 0], 1.0, err_msg=f"{guarded} ({gradient_mode})")
        assert np.all(np.isfinite(gradient[~untaken, 0])), guarded


@pytest.mark.parametrize("name, position", CASES, ids=IDS)
def test_the_exporter_prints_the_function_as_compile_runs_it(tmp_path, name, position):
    source = f"mean({_call(name, position, _arity(name))})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lossdsl.LossDSLWarning)
        compiled = lossdsl.compile(source, dtype="float64")
    exported = Exported(source, {}, tmp_path).loss
    y_true = np.zeros((GRID.size, 1))
    ours = _value_and_tape_gradient(compiled, y_true, GRID[:, None])
    theirs = _value_and_tape_gradient(exported, y_true, GRID[:, None])
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
        finite = np.isfinite(a)
        np.testing.assert_allclose(b[finite], a[finite], rtol=1e-12, atol=0)


# ---------------------------------------------------------------- numbers: the `elementary` column

OWN_FUNCTIONS = [op for op in OPS if isinstance(op.sympy, type) and issubclass(op.sympy, DSLFunction)]


def test_every_function_lossdsl_defines_has_a_value_on_numbers_or_depends_on_position():
    missing = [op.name for op in OWN_FUNCTIONS if op.elementary is None and not op.by_position]
    assert not missing, f"give these rows an `elementary` form: {missing}"


@pytest.mark.parametrize("op", [op for op in OWN_FUNCTIONS if op.elementary is not None],
                         ids=lambda op: op.name)
def test_the_value_on_numbers_is_the_functions_value(op):
    """``expm1(2).evalf()`` (SymPy, through the row's `elementary`) equals NumPy's expm1(2)."""
    points = [(-1.5, 0.5, 2.0), (0.0, 0.25, 0.75), (0.5, 0.0, 1.0), (3.0, 2.0, -0.5)]
    for point in points:
        args = point[:op.arity]
        expected = NUMPY[op.name](*map(np.float64, args))
        value = op.sympy(*map(sympy.Float, args)).evalf()
        if np.isfinite(expected):
            assert float(value) == pytest.approx(float(expected), rel=1e-12, abs=1e-15), (op, args)
        else:
            assert not value.is_finite or value.has(sympy.I, sympy.nan, sympy.zoo), (op, args)


def test_a_comparison_of_constants_is_decided_not_left_to_sympy():
    # Was a hang: SymPy recursed without end on Ge(3, expm1(maximum(0.25, 2))) inside where.
    loss = analyze("alpha = 1.5; where(3 >= expm1(maximum(.25, 2)), -expm1(alpha), y_pred)")
    assert str(loss.expression) == "y_pred"  # expm1(2) = 6.39 > 3: the other branch


@pytest.mark.parametrize("source", ["mean(log1p(-2)*y_pred)", "mean(xlogy(1, -1) + y_pred)",
                                    "mean(xdivy(1, 0) + y_pred)", "mean(y_pred*softplus(1e400))"])
def test_a_constant_call_without_a_finite_real_value_is_refused(source):
    with pytest.raises((lossdsl.DSLTypeError, lossdsl.DSLLimitError)) as caught:
        analyze(source)
    assert caught.value.line == 1 and caught.value.column is not None


def test_every_error_a_user_can_cause_carries_a_hint():
    """Each LossDSLError raised in lossdsl/ names a hint; only internal errors (a bug to report) may not."""
    import ast
    from pathlib import Path

    families = {name for name in dir(lossdsl.errors) if name.endswith("Error")}
    missing = []
    for path in sorted((Path(lossdsl.__file__).parent).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in families):
                continue
            message = ast.unparse(node.args[0]) if node.args else ""
            if "Internal error" not in message and not any(k.arg == "hint" for k in node.keywords):
                missing.append(f"{path.name}:{node.lineno}")
    assert not missing, f"errors without a hint: {missing}"


# ---------------------------------------------------------------- the derived tables read the rows

def test_numpy_evaluation_reads_every_rows_numpy_column():
    from lossdsl.boosting.numpy_eval import NUMPY_FORMS
    from lossdsl.ops.numpy_forms import numpy_form

    assert NUMPY_FORMS == {op.name: numpy_form(op) for op in OPS}


@pytest.mark.parametrize("op", [op for op in OPS if op.domain is not None], ids=lambda op: op.name)
def test_the_infinity_warning_shows_the_rows_pole(op):
    y = sympy.Symbol("y_pred", real=True)
    symbols = sympy.symbols(f"a:{op.arity}", real=True)
    pole = op.domain.pole(*symbols)
    (position,) = [i for i, s in enumerate(symbols) if s in pole.free_symbols]
    # The argument whose pole lies in [0, 1], where the warning looks: y_pred or -y_pred.
    argument, at = next((text, value) for text, value in (("y_pred", y), ("-y_pred", -y))
                        if 0 <= sympy.solve(pole.xreplace({symbols[position]: value}), y)[0] <= 1)
    shown = op.domain.shown.format(pole.xreplace({symbols[position]: at}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lossdsl.LossDSLWarning)
        warned = analyze(f"mean({_call(op.name, position, op.arity, argument)})").warnings
    assert any(f"`{shown}` is infinite" in message for message in warned), (shown, warned)


def test_abs_and_sign_differentiate_by_their_rows():
    from lossdsl.symbolic.derive import _STAND_INS

    assert {head: stand_in.row for head, stand_in in _STAND_INS.items()} == {
        op.sympy: op for op in OPS if op.derivatives and isinstance(op.sympy, type)
        and not issubclass(op.sympy, DSLFunction)}
    assert set(_STAND_INS) == {sympy.Abs, sympy.sign}
