"""Every worked example in examples/ runs to the end and prints what it claims.

Each runs as a subprocess from the repo root with the tree under test first on
PYTHONPATH (a script's own folder comes first on sys.path, not the cwd). The
scripts assert their own comparisons too; here the printed figures are read
back and checked, so a script that stopped checking would still fail.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sympy

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, f"examples/{name}"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def number_after(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s*([-+0-9.e]+)", text)
    assert match, f"no {label!r} in:\n{text}"
    return float(match.group(1))


# Printed formulas are compared as formulas, not as strings: SymPy's print
# (`(-y_pred + y_true)**2`) and lossdsl's readable one (`n = sum(1); (y_true - y_pred)^2`)
# are the same formula.
_NAMES = {"mean": sympy.Function("mean"), "sum": sympy.Function("sum"), "n": sympy.Symbol("n")}


def _formula(text: str) -> sympy.Expr:
    """A printed formula (SymPy or DSL spelling, with `name = value;` bindings) as SymPy."""
    *bindings, body = [part.strip() for part in text.split(";")]
    values = {}
    for binding in bindings:
        name, value = (side.strip() for side in binding.split("=", 1))
        if not value.startswith("sum(1"):  # `n = sum(1)` names the count n: it stays a symbol
            values[sympy.Symbol(name)] = _formula(value)
    expr = sympy.sympify(body.replace("^", "**"), locals=_NAMES)
    for name, value in reversed(list(values.items())):
        expr = expr.subs(name, value)
    return expr


def assert_formula(label: str, out: str, expected: str) -> None:
    match = re.search(re.escape(label) + r"\s*(.+)$", out, flags=re.M)
    assert match, f"no {label!r} in:\n{out}"
    printed = match.group(1).split(" {")[0].strip()  # a line may go on with the params dict
    difference = sympy.nsimplify(_formula(printed) - _formula(expected))
    assert sympy.simplify(difference) == 0, f"{label} {printed} is not {expected}"


def test_formula_comparison_reads_both_spellings():
    assert_formula("d/dy_pred  :", "d/dy_pred  : n = sum(1); (2 * y_pred + lam * (2 * y_pred - 1)"
                   " - 2 * y_true) / n\n", "(lam*(2*y_pred - 1.0) + 2*y_pred - 2*y_true)/n")
    with pytest.raises(AssertionError):
        assert_formula("d/dw =", "d/dw = 2 * lam * w\n", "1.0*lam*w")


def test_quickstart_prints_formulas_checks_them_and_trains():
    out = run_example("quickstart.py")
    assert_formula("simplified :", out, "lam*mean((0.5 - y_pred)**2) + mean((-y_pred + y_true)**2)")
    assert_formula("d/dy_pred  :", out, "(lam*(2*y_pred - 1.0) + 2*y_pred - 2*y_true)/n")
    assert "autodiff   : symbolic gradient and tf.GradientTape agree" in out
    first, last = map(float, re.search(r"loss ([0-9.]+) -> ([0-9.]+)", out).groups())
    assert last < first


def test_fit_x_squared_learns_the_parabola():
    out = run_example("fit_x_squared.py")
    assert "autodiff   : passed" in out
    assert_formula("d/dy_pred  :", out, "(y_pred - y_true)/(n*sqrt(1 + (y_pred - y_true)**2/delta**2))")
    assert number_after("max error on the grid:", out) < 0.1
    first, last = map(float, re.search(r"loss ([0-9.]+) -> ([0-9.]+)", out).groups())
    assert last < first / 10


def test_tape_loop_shows_and_checks_the_penalty_gradient():
    out = run_example("tape_loop_l2.py")
    assert_formula("d/dw =", out, "1.0*lam*w")
    gaps = [float(g) for g in re.findall(r"max \|difference\| = ([0-9.e+-]+)", out)]
    assert len(gaps) == 2 and max(gaps) < 1e-9
    assert number_after("final MSE", out) < 0.005


def test_focal_loss_matches_the_hand_written_subclass():
    out = run_example("focal_loss.py")
    number = r"\s+([0-9.e+-]+)"
    rows = re.findall(r"^\s*([0-9.]+)\s+([0-9.]+)\s+(yes|no)" + number * 3 + "$", out, re.MULTILINE)
    assert len(rows) == 8
    for *_, ours, theirs, gap in rows:
        assert ours == theirs and float(gap) < 1e-5
    curves = re.findall(r"training, (?:lossdsl|by hand) : (.*)", out)
    assert len(curves) == 2 and curves[0] == curves[1]
    assert "values and gradients agree" in out and "training curves agree" in out


def test_weighted_digits_raises_the_rare_class_recall():
    out = run_example("weighted_digits.py")
    assert "equals Keras BinaryCrossentropy(from_logits=True)" in out
    plain = re.search(r"plain CE \(w_pos=1\)\s+([0-9.]+)\s+([0-9.]+)", out)
    weighted = re.search(r"weighted CE \(w_pos=[0-9.]+\)\s+([0-9.]+)\s+([0-9.]+)", out)
    assert plain and weighted, out
    assert float(weighted.group(2)) > float(plain.group(2)) + 0.2
    assert float(weighted.group(1)) > 0.5  # not everything called an 8


def test_regression_model_reloads_with_the_same_numbers():
    out = run_example("regression_save_reload.py")
    assert "lossdsl_mae equals keras_mae in every epoch" in out
    before = re.search(r"^before\s+(.*)$", out, re.MULTILINE).group(1).split()
    after = re.search(r"^reloaded\s+(.*)$", out, re.MULTILINE).group(1).split()
    assert before == after and len(before) == 3
    assert number_after("max |prediction difference| after reload:", out) < 1e-6
    assert "reloaded model matches" in out


def test_boosting_focal_matches_the_builtin_and_beats_logistic_loss():
    pytest.importorskip("xgboost")  # the `test` extra installs both; CI runs this
    pytest.importorskip("lightgbm")
    out = run_example("boosting_focal.py")
    assert "agree with finite differences" in out
    assert number_after("max |margin difference|:", out) < 1e-5
    assert "is negative at" in out  # the focal Hessian's warning, shown by explain()
    rows = re.findall(r"^\s+(xgboost|lightgbm)\s+logistic ([0-9.]+)\s+focal ([0-9.]+)$", out,
                      re.MULTILINE)
    assert len(rows) == 2
    for _, logistic, focal in rows:
        assert float(logistic) > 0.8 and float(focal) > float(logistic)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_every_example_opens_with_a_titled_docstring(path):
    text = path.read_text()
    assert text.startswith('"""') and "Run: python examples/" + path.name in text


def test_metric_learning_digits_trains_an_embedding_whose_neighbours_share_labels():
    out = run_example("metric_learning_digits.py")
    assert "d/dy_pred  : backward0(pair_dist(y_pred))" in out
    assert "where      : backward0(pair_dist(y_pred)) = d/dy_pred of sum(g * pair_dist(y_pred))" in out
    assert "check      : symbolic gradient and tf.GradientTape agree" in out
    first, last = map(float, re.search(r"loss ([0-9.]+) -> ([0-9.]+)", out).groups())
    before = number_after("1-NN accuracy before training:", out)
    after = number_after("1-NN accuracy after training:", out)
    assert last < first and after > before + 0.1 and after > 0.9, out
