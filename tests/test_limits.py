"""Pathological sources: each returns a result or a clear DSLLimitError/DSLTypeError, quickly.

pytest-timeout is the hang detector (no timing asserts): before the limits in
lossdsl/limits.py (MAX_REDUCTION_NESTING among them), several of these ran for
minutes or hours, exhausted memory, or raised ValueError/IndexError.
Also here: lossdsl/limits.py is the one home of every limit, and the README's
limits table is generated from it.
"""

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

import lossdsl
from lossdsl import limits

pytestmark = pytest.mark.timeout(60)


def _balanced(leaves: list[str], op: str) -> str:
    while len(leaves) > 1:
        leaves = [f"({leaves[i]}{op}{leaves[i + 1]})" if i + 1 < len(leaves) else leaves[i]
                  for i in range(0, len(leaves), 2)]
    return leaves[0]


def _nested(template: str, depth: int) -> str:
    text = "y_pred"
    for _ in range(depth):
        text = template.replace("{}", text)
    return text


REFUSED = {
    "10^10^10 (exact integer of 10^10 digits)": ("10^10^10", lossdsl.DSLLimitError),
    "y_pred*10^10^10^10": ("y_pred*10^10^10^10", lossdsl.DSLLimitError),
    "(y_pred+1)^100000": ("(y_pred+1)^100000", lossdsl.DSLLimitError),
    "a 5000-digit literal (ValueError)": ("9" * 5000 + "*y_pred", lossdsl.DSLLimitError),
    "1e400": ("y_pred*1e400", lossdsl.DSLLimitError),
    "(10^300)^2 folded": ("y_pred + (10^300)^2", lossdsl.DSLLimitError),
    "((((...)))) 5000 deep": ("(" * 5000 + "y_pred" + ")" * 5000, lossdsl.DSLLimitError),
    "------y_pred 3000": ("-" * 3000 + "y_pred", lossdsl.DSLLimitError),
    "y_pred^y_pred^... 1000": ("^".join(["y_pred"] * 1000), lossdsl.DSLLimitError),
    "exp(exp(...)) 500": (_nested("exp({})", 500), lossdsl.DSLLimitError),
    "softmax 30 deep (hours)": (_nested("softmax({})", 30), lossdsl.DSLLimitError),
    "softmax via bindings": ("a = softmax(y_pred); b = softmax(a); c = softmax(b); d = softmax(c);"
                             " e = softmax(d); f = softmax(e); g = softmax(f); h = softmax(g);"
                             " softmax(h)", lossdsl.DSLLimitError),
    "y_pred^y_pred^... 60 (gradient blow-up)": ("^".join(["y_pred"] * 60), lossdsl.DSLLimitError),
    "product of 500 factors (minutes)": (_balanced([f"(y_pred+{i})" for i in range(500)], "*"),
                                         lossdsl.DSLLimitError),
    "long sum of 1500 terms": ("+".join(["y_pred"] * 1500), lossdsl.DSLLimitError),
    # A column x[..., k] is a reduction (the sum of one_hot(k)*x over the last axis).
    "columns 9 deep": ("y_pred" + "[..., 0]" * 9, lossdsl.DSLLimitError),
    "columns 8 deep in a mean": ("mean(y_pred" + "[..., -1]" * 8 + ")", lossdsl.DSLLimitError),
    "columns of parenthesised columns": ("(" * 9 + "y_pred" + ")[..., 1]" * 9,
                                         lossdsl.DSLLimitError),
    "columns via bindings": ("a = y_pred[..., 0]; " + "".join(
        f"{b} = {a}[..., 0]; " for a, b in zip("abcdefgh", "bcdefghi")) + "mean(i)",
        lossdsl.DSLLimitError),
    "columns and softmax alternating": (_nested("softmax({})[..., 0]", 5),
                                        lossdsl.DSLLimitError),
    "columns 500 deep": ("y_pred" + "[..., 0]" * 500, lossdsl.DSLLimitError),
    "sqrt(-1)": ("y_pred + sqrt(-1)", lossdsl.DSLTypeError),
    "log(0)": ("y_pred + log(0)", lossdsl.DSLTypeError),
    "(-8)^(1/3)": ("y_pred + (-8)^(1/3)", lossdsl.DSLTypeError),
    "0/0": ("y_pred * (0/0)", lossdsl.DSLTypeError),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_pathological_source_is_refused_with_a_located_error(name):
    source, kind = REFUSED[name]
    with pytest.raises(kind) as caught:
        lossdsl.compile_expression(source)
    assert caught.value.line is not None and caught.value.column is not None
    assert str(caught.value)


ACCEPTED = {
    "many distinct reductions": _balanced([f"max(y_pred*{i})" for i in range(120)], "+"),
    "sum of 100 ratios (together() takes seconds)": _balanced(
        [f"(y_pred+{i})/(y_true+{i})" for i in range(100)], "+"),
    "power tower of 10": "^".join(["y_pred"] * 10),
    "exp 25 deep": _nested("exp({})", 25),
    "softmax 8 deep": _nested("softmax({})", 8),
    "variance of a variance":
        "v = mean((y_pred - mean(y_pred))^2); mean((y_pred*v - mean(y_pred*v))^2)",
    "a 1000 exponent": "mean((y_pred+1)^1000)",
    "10^300 constant": "y_pred * 10^300",
    "a deep division chain": _nested("y_pred/({})", 30),
    "columns 7 deep in a mean": "mean(y_pred" + "[..., 0]" * 7 + ")",
    "a column of each of 120 terms": _balanced(
        [f"y_pred[..., {i % 3 - (i % 2) * 3}]*{i}" for i in range(120)], "+"),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_large_but_legal_source_compiles_and_runs(name):
    loss = lossdsl.compile(ACCEPTED[name], dtype="float64")
    value = loss(np.full((2, 3), 0.4), np.full((2, 3), 0.6))
    assert value.shape == ()
    for formula in (loss.expression, loss.gradient):  # SymPy's recursive printers cope
        assert sympy.sstr(formula) and sympy.latex(formula)


@pytest.mark.parametrize("source", [
    "y_pred" + "[..., 0]" * 9,
    "mean(y_true*y_pred" + "[..., 2]" * 12 + ")",
    "a = y_pred[..., 0]; " + "".join(f"{b} = {a}[..., -1]; " for a, b in zip("abcdefgh",
                                                                            "bcdefghi")) + "i",
])
def test_nested_columns_hit_the_reduction_nesting_limit_at_a_column(source):
    """Not a RecursionError, nor a slow compile: the limit, pointing at a column."""
    with pytest.raises(lossdsl.DSLLimitError) as caught:
        lossdsl.compile(source)
    error = caught.value
    assert f"nested more than {limits.MAX_REDUCTION_NESTING} deep" in error.message
    shown = source[error.span.start:error.span.end]
    assert re.search(r"\[\.\.\., -?\d\]$", shown), shown


def test_deep_formulas_print_and_lower_within_the_recursion_limit():
    depth_limited = _nested("sigmoid({})", 30)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # the default, whatever other tests did
    try:
        loss = lossdsl.compile(depth_limited, dtype="float64")
        report = lossdsl.check_gradients(loss, np.full((2, 3), 0.3), np.full((2, 3), 0.7))
    finally:
        sys.setrecursionlimit(old)
    assert report.passed


def test_reduction_names_stay_short_however_deep_the_nesting():
    analysis = lossdsl.analyze(_nested("softmax({})", 8))
    names = [str(symbol) for symbol in analysis.table.reductions]
    assert max(map(len, names)) <= limits.MAX_REDUCTION_NAME + 20
    assert len(set(names)) == len(names)  # numbered stand-ins never collide


def test_limits_are_the_documented_values():
    readme = open("README.md", encoding="utf-8").read()
    for value in (limits.MAX_DEPTH, limits.MAX_NODES, limits.MAX_REDUCTION_NESTING,
                  limits.MAX_EXPONENT, limits.MAX_FORMULA_NODES, limits.MAX_DERIVATIVE_WORK,
                  limits.MAX_DIFFERENTIATION_WORK):
        assert f"| {value:,} |" in readme, value


ROOT = Path(__file__).resolve().parents[1]


def test_readme_limits_table_is_generated_from_limits_py():
    """Regenerate with: python -c "from lossdsl import limits; print(limits.markdown_table())"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- limits-table:start -->\n")[1].split("<!-- limits-table:end -->")[0]
    assert table == limits.markdown_table()


def test_every_limit_row_names_a_constant_of_limits_py():
    values = {f"{value:,}" for name, value in vars(limits).items()
              if name.isupper() and isinstance(value, int)}
    for row in limits.LIMITS:
        number = row.value.split()[0]
        assert number in values or not number[0].isdigit(), row


# A limit is a bound on size, depth, effort, time or memory: MAX_*, *_BUDGET*, *CACHE_SIZE.
_LIMIT_NAME = re.compile(r"^_?(MAX_\w+|\w*_BUDGET\w*|\w*CACHE_SIZE)$")


def _limits_defined_outside_limits_py() -> list[str]:
    found = []
    for path in sorted((ROOT / "lossdsl").rglob("*.py")):
        if path == ROOT / "lossdsl" / "limits.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AnnAssign) else [])
            for target in targets:
                if isinstance(target, ast.Name) and _LIMIT_NAME.match(target.id):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {target.id}")
            if (isinstance(node, ast.keyword) and node.arg == "maxsize"
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, int) and node.value.value > 1):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} maxsize={node.value.value}")
    return found


def test_every_limit_lives_in_limits_py():
    """Modules import their limits from lossdsl.limits; none defines its own (nor a literal cache size)."""
    offenders = _limits_defined_outside_limits_py()
    assert not offenders, "limits defined outside lossdsl/limits.py:\n" + "\n".join(offenders)
