"""Every formula lossdsl prints is lossdsl source that parses back to what it shows.

The property: for generated programs and every library loss, the printed
loss, gradient and parameter gradients parse (``parse_source``), analyze
(``lossdsl.analyze``: what ``compile`` runs before TensorFlow) and evaluate, with
the independent NumPy interpreter of ``dsl_strategies``, to what the SymPy
formula evaluates to, at random points. The SymPy side is evaluated by a walker
written here, so neither side is lossdsl's own evaluator.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings

import lossdsl
from dsl_strategies import NUMPY, PAIRS, SHAPE, NumpyInterpreter, _reduce, programs
from lossdsl.analysis.analyze import analyze
from lossdsl.analysis.formula import Formula
from lossdsl.errors import LossDSLError
from lossdsl.language.ir import parse_source
from lossdsl.ops import BY_SYMPY_HEAD
from lossdsl.symbolic.counts import Count

_COMPARE = {sympy.Eq: np.equal, sympy.Ne: np.not_equal, sympy.Lt: np.less,
            sympy.Le: np.less_equal, sympy.Gt: np.greater, sympy.Ge: np.greater_equal}
_FORBIDDEN = re.compile(r"Heaviside|Piecewise|Abs\(|\*\*|…|\bMax\(|\bMin\(|\bEq\(|\b1\.0\*")


class SympyEvaluator:
    """A SymPy formula over a reduction table, in NumPy at full shape (reductions keep dims)."""

    def __init__(self, table, env: dict[str, np.ndarray], shape: tuple[int, ...]) -> None:
        self.table, self.env, self.shape = table, env, shape

    def full(self, value) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, np.float64), self.shape)

    def axes(self, axis) -> tuple[int, ...]:
        rank = len(self.shape)
        return tuple(range(1, rank)) if axis is None else tuple(a % rank for a in axis)

    def __call__(self, expr: sympy.Basic):
        with np.errstate(all="ignore"):
            return self.eval(expr)

    def eval(self, expr: sympy.Basic):
        if expr.is_Number or expr.is_NumberSymbol:
            return np.float64(float(expr))
        if isinstance(expr, Count):
            return np.float64(np.prod([self.shape[a] for a in self.axes(expr.axis)]))
        if isinstance(expr, sympy.Symbol):
            if expr in self.table.pairs:  # a pair function of an input as given
                pair = self.table.pairs[expr]
                value = PAIRS[pair.kind](self.env[pair.input.name]) if pair.input is not None \
                    else PAIRS[pair.kind](self.shape[0])
                if len(self.shape) == 3:  # over triples (i, j, k): d(i, j) or d(i, k)
                    value = value[:, :, None] if pair.axis == -2 else value[:, None, :]
                return value
            if expr in self.table:
                reduction = self.table[expr]
                return _reduce(reduction.kind, self.full(self.eval(reduction.arg)),
                               self.axes(reduction.axis))
            return self.env[expr.name]
        args = [self.eval(arg) for arg in expr.args] if not isinstance(
            expr, sympy.Piecewise) else None
        if isinstance(expr, sympy.Add):
            return sum(args[1:], args[0])
        if isinstance(expr, sympy.Mul):
            return np.prod(np.broadcast_arrays(*args), axis=0)
        if isinstance(expr, sympy.Pow):
            return np.power(*args)
        if isinstance(expr, sympy.Piecewise):
            value = self.eval(expr.args[-1][0])
            for piece, condition in reversed(expr.args[:-1]):
                value = np.where(self.eval(condition), self.eval(piece), value)
            return value
        if isinstance(expr, sympy.Heaviside):
            at_zero = args[1] if len(args) > 1 else 0.5
            return np.where(args[0] > 0, 1.0, np.where(args[0] == 0, at_zero, 0.0))
        if type(expr) in _COMPARE:
            return _COMPARE[type(expr)](*args)
        if isinstance(expr, (sympy.And, sympy.Or)):
            return (np.logical_and if isinstance(expr, sympy.And) else np.logical_or).reduce(
                np.broadcast_arrays(*args))
        if isinstance(expr, sympy.Not):
            return np.logical_not(args[0])
        if isinstance(expr, (sympy.Max, sympy.Min)):
            fold = np.maximum if isinstance(expr, sympy.Max) else np.minimum
            return fold.reduce(np.broadcast_arrays(*args))
        row = BY_SYMPY_HEAD.get(type(expr))
        if row is not None:
            if row.by_position:
                args = [self.full(arg) for arg in args]
            return NUMPY[row.name](*args)
        return getattr(np, type(expr).__name__)(*args)  # sinh, tan: SymPy's own heads


def _points(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.95, shape), rng.uniform(0.05, 0.95, shape)


def _check_parses_back(source: str, params: dict[str, float], shape=SHAPE,
                       seed: int = 0) -> None:
    analysis = analyze(source)
    if analysis.table.pairs:  # rows over the batch: a (batch, batch) similarity matrix fits too
        shape = (shape[0], shape[0])
    y_true, y_pred = _points(seed, shape)
    if analysis.table.triples:  # over triples the rows are (batch, batch) per sample
        shape = (shape[0],) * 3
    env = {"y_true": y_true, "y_pred": y_pred, **{k: np.float64(v) for k, v in params.items()}}
    formulas = [analysis.expression, analysis.gradient, *analysis.parameter_gradients.values()]
    # The backward pass of a pair function has no spelling in the language (explain says
    # what it is): a gradient through one is shown, not parsed back.
    backward = {s for s, pair in analysis.table.pairs.items() if pair.upstream is not None}
    formulas = [expr for expr in formulas if not expr.free_symbols & backward]
    for expr in formulas:
        text = str(Formula(expr, analysis))
        assert not _FORBIDDEN.search(text), text
        program = parse_source(text)  # a LossDSLError here fails the test
        analyze(text)  # and so does one in what compile runs before TensorFlow
        shown = SympyEvaluator(analysis.table, env, shape)(expr)
        parsed = NumpyInterpreter(program, y_true, y_pred, dict(params)).run()
        shown = np.broadcast_to(np.asarray(shown, np.float64), parsed.shape)
        np.testing.assert_allclose(parsed, shown, rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=f"{source}\n  printed as {text}")


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(programs(depth=3))
def test_generated_programs_parse_back(program):
    source = str(program)
    try:
        analysis = analyze(source)
    except LossDSLError:
        assume(False)
    params = dict(analysis.defaults)
    _check_parses_back(source, params)


def _library_sources():
    for spec in lossdsl.losses.available():
        flags = [name for name, value in spec.options.items() if isinstance(value, bool)]
        yield spec.name, spec.source
        for flag in flags:
            yield f"{spec.name}[{flag}]", spec.source_for(**{flag: not spec.options[flag]})


LIBRARY = dict(_library_sources())


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_library_formulas_parse_back(name):
    source = LIBRARY[name]
    _check_parses_back(source, dict(analyze(source).defaults), shape=(4, 5))


# ------------------------------------------------------------- targeted


def _text(source: str, which: str = "gradient") -> str:
    analysis = analyze(source)
    return str(Formula(getattr(analysis, which), analysis))


def test_bindings_are_kept_and_named():
    text = _text("p = clip(y_pred, 1e-7, 1 - 1e-7); mean(-y_true*log(p))")
    assert text.startswith("p = clip(y_pred, 1e-7, 0.9999999); ")
    assert text.count("clip(") == 1
    mu = _text("mu = mean(y_pred); mean((y_pred - mu)^2)")
    assert mu == "mu = mean(y_pred); n = sum(1); 2 * (y_pred - mu) / n"


def test_dsl_spellings():
    huber = _text("delta = 1; e = y_pred - y_true; "
                  "mean(where(abs(e) <= delta, 0.5*e^2, delta*abs(e) - 0.5*delta^2), axis=-1)")
    assert huber == "e = y_pred - y_true; n = sum(1, axis=-1); where(delta >= abs(e), e, delta * sign(e)) / n"
    assert "where(1 >= y_pred, 1, 0)" in _text("mean(clip(y_pred, 0, 1)^2)")
    assert _text("mean(maximum(y_pred, y_true)^2)", "expression") == "mean(maximum(y_pred, y_true)^2)"


def test_no_noise():
    assert _text("0.5*alpha*sum(y_pred^2)") == "alpha * y_pred"  # SymPy: 1.0*alpha*y_pred
    assert _text("mean((y_true - y_pred)^2)") == "n = sum(1); 2 * (y_pred - y_true) / n"
    assert _text("sum(y_true - y_pred)", "expression") == "sum(y_true) - sum(y_pred)"


def test_long_reductions_get_names_never_an_ellipsis():
    source = lossdsl.losses.REGISTRY["focal"].source
    analysis = analyze(source)
    for formula in [analysis.expression, *analysis.parameter_gradients.values()]:
        text = str(Formula(formula, analysis))
        assert "…" not in text and "..." not in text
    assert re.search(r"\bsum_1 = sum\(", str(Formula(analysis.parameter_gradients["gamma"],
                                                     analysis)))


def test_repeated_parts_get_readable_names():
    text = _text(lossdsl.losses.REGISTRY["focal"].source)
    assert "sigmoid_minus_y_pred = sigmoid(-y_pred)" in text


def test_counts_have_several_names_when_several_axes():
    from lossdsl.analysis.naming import name_formulas
    from lossdsl.symbolic.translate import ReductionTable
    y = sympy.Symbol("y_pred", real=True)
    text = name_formulas([y / Count(None) + y**2 / Count((-1,))], ReductionTable()).text()
    assert "n = sum(1)" in text and "n_last = sum(1, axis=-1)" in text


def test_formula_is_sympy_underneath():
    analysis = analyze("mean((y_true - y_pred)^2)")
    formula = Formula(analysis.gradient, analysis)
    assert formula == analysis.gradient and formula.sympy == analysis.gradient
    assert formula.free_symbols == analysis.gradient.free_symbols
    assert sympy.simplify(formula - analysis.gradient) == 0
    assert repr(formula) == str(formula)
    assert formula._repr_latex_().startswith("$\\displaystyle")


def test_latex_uses_the_users_names():
    analysis = analyze("mu = mean(y_pred); mean((y_pred - mu)^2)")
    tex = Formula(analysis.gradient, analysis).latex()
    assert r"\mu &= \operatorname{mean}" in tex and r"\mu" in tex.splitlines()[-2]


@pytest.mark.parametrize("source", ["mean(cosh(y_pred))",
                                    "mean(sqrt(y_pred))", "mean(y_pred^-1.5)",
                                    "mean(tanh(y_pred)^2)"])
def test_internal_heads_are_spelled_in_the_language(source):
    _check_parses_back(source, {})


def test_numbers_round_trip():
    from lossdsl.analysis.dsl_text import formula_text
    from lossdsl.symbolic.translate import ReductionTable
    for value in (1e-7, 0.9999999, 1 / 3, 2.5e20, sympy.Rational(2, 3), -4):
        text = formula_text(sympy.sympify(value), ReductionTable())
        assert float(sympy.sympify(value)) == pytest.approx(eval(text.replace("^", "**")), rel=1e-15)


def test_a_repeated_condition_stays_inline():
    y, t = sympy.Symbol("y_pred", real=True), sympy.Symbol("y_true", real=True)
    from lossdsl.analysis.naming import name_formulas
    from lossdsl.symbolic.translate import ReductionTable
    condition = sympy.Eq(t, 2)
    expr = sympy.Piecewise((0, condition), (1, True)) * sympy.sign(
        sympy.Piecewise((t, condition), (y, True)))
    assert name_formulas([expr], ReductionTable()).text() == \
        "where(y_true == 2, 0, 1) * sign(where(y_true == 2, y_true, y_pred))"


def test_combinations_of_where_conditions():
    y = sympy.Symbol("y_pred", real=True)
    from lossdsl.analysis.dsl_text import formula_text
    from lossdsl.symbolic.translate import ReductionTable
    expr = sympy.Piecewise((1, sympy.And(y > 0, y < 1)), (2, sympy.Or(y > 2, sympy.Eq(y, -1))), (3, True))
    text = formula_text(expr, ReductionTable())
    program = parse_source(text)
    values = np.array([[-1.0, 0.5, 3.0, 1.5]])
    got = NumpyInterpreter(program, values, values, {}).run()
    assert got.tolist() == [[2.0, 1.0, 2.0, 3.0]]


def test_keras_objects_show_formulas_as_source_and_their_report_as_markdown():
    loss = lossdsl.compile("mu = mean(y_pred); mean((y_pred - mu)^2)")
    assert str(loss.gradient) == "mu = mean(y_pred); n = sum(1); 2 * (y_pred - mu) / n"
    assert loss.gradient == loss.compiled.gradient  # SymPy underneath
    markdown = loss._repr_markdown_()
    assert markdown.startswith("**Loss** `mu = mean(y_pred); mean((y_pred - mu)^2)`")
    assert "| as written | runs as | rewrites |" in markdown
    penalty = lossdsl.regularizer("0.5*alpha*sum(w^2)", alpha=0.1)
    assert str(penalty.gradient) == "alpha * w"
    assert "*d loss / d w*: `alpha * w`" in penalty._repr_markdown_()
    assert set(loss.parameter_gradients) == set()


# ------------------------------------------------------------- README examples, generated

ROOT = Path(__file__).resolve().parents[1]
FOCAL = "mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))"
SHOW_ARGS = ["show", FOCAL, "--param", "alpha=0.25", "--param", "gamma=2"]
GRADIENT_EXAMPLES = [
    "mean((y_true-y_pred)^2)",
    "mu = mean(y_pred); mean((y_pred - mu)^2)",
    "p = clip(y_pred, 1e-7, 1 - 1e-7); mean(-y_true*log(p))",
    "-sum(y_true*log_softmax(y_pred))",
]


def readme_blocks() -> dict[str, str]:
    """Each generated README block (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``)."""
    from lossdsl.tools.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(SHOW_ARGS) == 0
    command = " ".join(f'"{a}"' if " " in a or "(" in a else a for a in SHOW_ARGS)
    show = f"```console\n$ lossdsl {command}\n{out.getvalue()}```\n"
    rows = ["| loss | `loss.gradient` |", "| --- | --- |"]
    for source in GRADIENT_EXAMPLES:
        rows.append(f"| `{source}` | `{_text(source)}` |")
    return {"show-example": show, "gradients-table": "\n".join(rows) + "\n"}


def _between(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->\n")[1].split(f"<!-- {name}:end -->")[0]


def test_readme_examples_are_what_the_commands_print():
    """Regenerate with ``python tests/test_readable.py`` (rewrites only the marked blocks)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, block in readme_blocks().items():
        assert _between(readme, name) == block, f"README block {name!r} is stale"


def test_readme_comments_show_what_the_formulas_print():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    using = readme.split("## Using it")[1]
    source = re.search(r'loss = lossdsl\.compile\("([^"]+)"\)', using).group(1)
    for attribute in ("expression", "gradient"):
        comment = re.search(rf"print\(loss\.{attribute}\) +# (.+)", using).group(1).strip()
        assert comment == _text(source, attribute)
    l2 = re.search(r'lossdsl\.regularizer\("([^"]+)"', using).group(1)
    comment = re.search(r"l2\.gradient, .*# (.+), and its value", using).group(1)
    assert comment == str(Formula(analyze(l2, ("w",), "w").gradient, analyze(l2, ("w",), "w")))


if __name__ == "__main__":  # rewrite the README's generated blocks
    path = ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    for block_name, block in readme_blocks().items():
        text = text.replace(_between(text, block_name), block)
    path.write_text(text, encoding="utf-8")
