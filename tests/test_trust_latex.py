"""The LaTeX lossdsl shows means the formula it shows: parsed back, it evaluates to the same values.

Every formula's LaTeX (loss, gradient, parameter gradients; from ``formula_latex``,
``DSLLoss._repr_latex_``/``Explanation.to_latex`` and ``to_markdown``) is parsed
back with SymPy's own LaTeX parser (lark backend) and evaluated in float64 over
random arrays, next to the SymPy formula; both must agree wherever both are finite.

Only names are rewritten before parsing, never grouping: lossdsl's and SymPy's
function heads (``\\operatorname{log1p}``, ``\\sigma``, ``\\log{...}``, reduction
templates ...) become one-letter functions ``F_{code}(...)`` whose meaning is
derived from :data:`lossdsl.ops.OPS`; symbols become ``\\mathit{...}`` names; the
sizing words ``\\left``/``\\right`` are dropped; juxtaposition gets an explicit
``\\cdot`` (the parser cannot read ``f(x) y``). Each call's arguments are parsed
on their own, innermost first, and the call becomes a placeholder symbol (its
parentheses delimit it; this keeps lark's ambiguity ``F(x)`` = call or product
from exploding on long formulas). The parser cannot read
``\\begin{cases}`` at all: each cases block becomes ``F_{pw}(branch, condition,
...)`` with every branch and both sides of each condition still parsed by lark,
and the tests count how many formulas needed that, and how many did not parse.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
import sympy
from dsl_strategies import NUMPY, SHAPE, _one_hot, _reduce, programs
from hypothesis import event, given, settings
from lark import Tree
from sympy.core.function import AppliedUndef
from sympy.parsing.latex import parse_latex

import lossdsl
from lossdsl.analysis.analyze import analyze
from lossdsl.analysis.explain import explain
from lossdsl.analysis.latex import LossLatexPrinter, formula_latex, named_latex
from lossdsl.analysis.naming import name_formulas, user_bindings
from lossdsl.losses import available
from lossdsl.ops import OPS, REGISTRY, DSLFunction, xdivy, xlog1py, xlogy
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.translate import ELEMENTWISE_INPUTS, ReductionTable

pytestmark = pytest.mark.timeout(900)


def scaled(factor: float) -> settings:
    """``factor`` times the profile's example count (as in test_fuzz.py)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


class Unparsable(Exception):
    """The lark LaTeX parser cannot read this LaTeX (or reads it in several ways)."""


# ---------------------------------------------------------------- the vocabulary

def _codes():
    # Letters only: the parser's subscripts are one character or a run of letters.
    n = 0
    while True:
        yield "".join(chr(ord("a") + int(d)) for d in str(n))
        n += 1


_code = _codes()
# LaTeX head -> (code, meaning). A meaning builds SymPy from the parsed arguments.
HEADS: dict[str, tuple[str, object]] = {}


def _head(tex: str, meaning) -> None:
    HEADS[tex] = ("F_{h" + next(_code) + "}", meaning)


def _reduction(kind: str):
    def build(arg, axis_code=None):
        code = sympy.Integer(-1 if axis_code is None else axis_code)
        return sympy.Function(f"reduce_{kind}")(arg, code)
    return build


_CALL = re.compile(r"^(\\[A-Za-z]+(?:\{\{[A-Za-z0-9_\\]+\}\})?)\\left\(")
# head -> {"reduction": ..., "call": ...}: \max and \min are maximum(a, b) and the reduction max(x).
_BY_HEAD: dict[str, dict[str, object]] = {}
for _op in OPS:
    _match = _CALL.match(_op.latex)
    if _match is None:
        continue  # not a call: xlogy & co (products, fractions), one_hot, where, SymPy's own
    _tex = _match.group(1).replace("{{", "{").replace("}}", "}")
    if _op.kind == "reduction":
        _BY_HEAD.setdefault(_tex, {})["reduction"] = _reduction(_op.name)
    elif isinstance(_op.sympy, type) and issubclass(_op.sympy, DSLFunction):
        _BY_HEAD.setdefault(_tex, {})["call"] = _op.sympy


def _dispatch(meanings: dict[str, object]):
    def build(*args):
        has_axis = len(args) == 2 and args[1].is_Integer and int(args[1]) >= 100
        if "reduction" in meanings and (len(args) == 1 or has_axis):
            return meanings["reduction"](*args)
        return meanings["call"](*args)
    return build


for _tex, _meanings in _BY_HEAD.items():
    _head(_tex, _dispatch(_meanings))

# SymPy's own functions, printed by SymPy's LatexPrinter.
for _tex, _meaning in [(r"\log", sympy.log), (r"\sin", sympy.sin), (r"\cos", sympy.cos),
                       (r"\tanh", sympy.tanh), (r"\cosh", sympy.cosh),
                       (r"\operatorname{sign}", sympy.sign), (r"\theta", sympy.Heaviside)]:
    _head(_tex, _meaning)
ONE_HOT = r"\mathbb{1}\left[i = "
_head(ONE_HOT, REGISTRY["one_hot"].sympy)
_RELATIONS = {"=": sympy.Eq, r"\neq": sympy.Ne, "<": sympy.Lt, ">": sympy.Gt,
              r"\leq": sympy.Le, r"\geq": sympy.Ge}
for _tex, _meaning in _RELATIONS.items():
    _head("rel" + _tex, _meaning)


def _piecewise(*args):
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    if len(args) % 2:
        pairs.append((args[-1], True))
    return sympy.Piecewise(*pairs)


_head("cases", _piecewise)
MEANINGS = {code: meaning for code, meaning in HEADS.values()}

AXES: list[tuple[int, ...]] = []
_AXIS = re.compile(r", \\mathrm\{axis\}=(\([-\d, ]+\)|-?\d+)")


def _axis_code(match: re.Match) -> str:
    axis = tuple(int(a) for a in match.group(1).strip("()").split(","))
    if axis not in AXES:
        AXES.append(axis)
    return f", {100 + AXES.index(axis)}"


# ---------------------------------------------------------------- LaTeX -> parser's LaTeX

@dataclass
class Vocabulary:
    """The symbols of one formula: LaTeX text -> (parser name, SymPy symbol)."""

    symbols: dict[str, tuple[str, sympy.Symbol]] = field(default_factory=dict)

    @classmethod
    def of(cls, expr: sympy.Basic, table: ReductionTable) -> "Vocabulary":
        printer = LossLatexPrinter(table)
        vocabulary = cls()
        names = {s for s in _free(expr, table) if s not in table}
        names |= set(ELEMENTWISE_INPUTS.values())
        for i, symbol in enumerate(sorted(names, key=str)):
            tex = printer._print(symbol)
            assert tex not in vocabulary.symbols, f"two symbols print as {tex}"
            vocabulary.symbols[tex] = (rf"\mathit{{s{chr(ord('a') + i)}}}", symbol)
        return vocabulary


def _free(expr: sympy.Basic, table: ReductionTable) -> set[sympy.Symbol]:
    free = set(expr.free_symbols)
    for symbol in list(free):
        if symbol in table:
            free |= _free(table[symbol].arg, table)
    return free


_COMMAND_OPERATORS = {r"\cdot", r"\times", r"\leq", r"\geq", r"\neq", r"\le", r"\ge",
                      r"\ne", r"\end", r"\begin", r"\text", r"\right", r"\quad", r"\\"}
_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|\s+|\d+(?:\.\d*)?|[A-Za-z]|.")


def _juxtaposition_as_cdot(tex: str) -> str:
    """``a b`` -> ``a \\cdot b`` where a space separates two operands (the parser's gap)."""
    tokens = _TOKEN.findall(tex)
    out: list[str] = []
    previous = ""  # last significant token
    before_previous = ""
    for token in tokens:
        if token.isspace():
            out.append(token)
            continue
        ends = (previous[:1].isalnum() or previous == "}" or
                (previous in ")]|" and before_previous == r"\right") or
                (previous.startswith("\\") and previous[1:2].isalpha()
                 and previous not in _COMMAND_OPERATORS and previous != r"\left"))
        starts = (token[:1].isalnum() or token in "({" or
                  (token.startswith("\\") and token[1:2].isalpha()
                   and token not in _COMMAND_OPERATORS))
        if out and out[-1].isspace() and ends and starts:
            out.append(r"\cdot ")
        out.append(token)
        before_previous, previous = previous, token
    return "".join(out)


def _matching(tex: str, start: int) -> int:
    """Index of the brace closing the one opened at ``tex[start]``."""
    depth = 0
    for i in range(start, len(tex)):
        if tex[i] == "{" and tex[i - 1] != "\\":
            depth += 1
        elif tex[i] == "}" and tex[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return i
    raise Unparsable("unbalanced braces")


def _unbrace_calls(tex: str) -> str:
    """SymPy's ``\\log{\\left(x \\right)}`` and ``\\tanh^{2}{...}``: drop the braces, keep the parens."""
    pattern = re.compile(r"F_\{h[a-z]+\}")
    pos = 0
    while (match := pattern.search(tex, pos)) is not None:
        end = match.end()
        head, exponent = match.group(0), None
        if tex.startswith("^{", end):
            close = _matching(tex, end + 1)
            exponent, end = tex[end + 2:close], close + 1
        if tex.startswith("{", end):
            close = _matching(tex, end)
            call = head + tex[end + 1:close]
            call = call if exponent is None else rf"{{{call}}}^{{{exponent}}}"
            tex = tex[:match.start()] + call + tex[close + 1:]
        pos = match.start() + len(head)
    return tex


_CASES = re.compile(r"\\begin\{cases\}((?:(?!\\begin\{cases\}).)*?)\\end\{cases\}", re.S)
_OPEN = re.compile(r"\\left|\{")
_CLOSE = re.compile(r"\\right|\}")
_RELATION = re.compile(r" (=|\\neq|<|>|\\leq|\\geq) ")


def _condition(tex: str) -> str:
    depth, found = 0, []
    for token in re.finditer(r"\\left|\\right|\{|\}| (?:=|\\neq|<|>|\\leq|\\geq) ", tex):
        text = token.group(0)
        depth += 1 if _OPEN.fullmatch(text) else -1 if _CLOSE.fullmatch(text) else 0
        if depth == 0 and _RELATION.fullmatch(text):
            found.append(token)
    if len(found) != 1:
        raise Unparsable(f"condition {tex!r}")
    relation = found[0]
    code = HEADS["rel" + relation.group(0).strip()][0]
    return rf"{code}\left({tex[:relation.start()]}, {tex[relation.end():]}\right)"


def _cases_as_calls(tex: str) -> tuple[str, int]:
    count = 0
    while (match := _CASES.search(tex)) is not None:
        parts = []
        for row in match.group(1).split(r"\\"):
            value, _, condition = row.partition("&")
            parts.append(value.strip())
            condition = condition.strip()
            if condition != r"\text{otherwise}":
                if not condition.startswith(r"\text{for}\:"):
                    raise Unparsable(f"cases row {row!r}")
                parts.append(_condition(condition[len(r"\text{for}\:"):].strip()))
        call = rf"{HEADS['cases'][0]}\left({', '.join(parts)}\right)"
        tex = tex[:match.start()] + call + tex[match.end():]
        count += 1
    return tex, count


def parser_latex(tex: str, vocabulary: Vocabulary) -> tuple[str, int]:
    """The same formula, spelled for the lark parser; and how many cases blocks it had."""
    tex = _AXIS.sub(_axis_code, tex)
    tex = tex.replace(ONE_HOT, HEADS[ONE_HOT][0] + r"\left(").replace(r"\right]", r"\right)")
    tex = tex.replace("\\\\", "\\\\ ")  # SymPy glues a cases row to the `\\` before it
    names = {**{head: code for head, (code, _) in HEADS.items()
                if head.startswith("\\") and head != ONE_HOT},
             **{tex_: name for tex_, (name, _) in vocabulary.symbols.items()}}
    pattern = "|".join(rf"(?<![A-Za-z]){re.escape(k)}(?![A-Za-z_])"
                       for k in sorted(names, key=len, reverse=True))
    tex = re.sub(pattern, lambda m: names[m.group(0)], tex)
    tex = _unbrace_calls(tex)
    tex, cases = _cases_as_calls(tex)
    tex = _juxtaposition_as_cdot(tex)
    tex = re.sub(r"\\(left|right)(?![A-Za-z])", "", tex)
    if "\\begin" in tex or "\\text" in tex or "[" in tex:
        raise Unparsable("construct left over")
    return tex, cases


def _alternatives(parsed) -> list:
    if isinstance(parsed, Tree):
        return [alt for child in parsed.children for alt in _alternatives(child)]
    return [parsed]


_HEAD_CALL = re.compile(r"F_\{h[a-z]+\}\(")


def _closing_paren(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise Unparsable("unbalanced parentheses")


def _top_level_split(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, "{": 1, ")": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def parse_back(tex: str, vocabulary: Vocabulary) -> tuple[sympy.Expr, int]:
    """``tex`` read back in lossdsl's symbols and functions; and how many cases blocks it had.

    Calls are delimited by their parentheses, so each innermost call's arguments
    are parsed on their own and the call becomes a placeholder symbol; that keeps
    the lark parser's ambiguity (``F(x)``: a call, or ``F`` times ``x``) from
    multiplying into millions of readings on long formulas.
    """
    text, cases = parser_latex(tex, vocabulary)
    known = {name[len(r"\mathit{"):-1]: symbol for name, symbol in vocabulary.symbols.values()}
    while True:
        innermost = [(m, _closing_paren(text, m.end() - 1)) for m in _HEAD_CALL.finditer(text)]
        innermost = [(m, close) for m, close in innermost
                     if "F_{h" not in text[m.end():close]]
        if not innermost:
            return _parse_piece(text, known), cases
        match, close = innermost[0]
        args = [_parse_piece(arg, known) for arg in _top_level_split(text[match.end():close])]
        name = "z" + "".join(chr(ord("a") + int(d)) for d in str(len(known)))
        known[name] = MEANINGS[match.group(0)[:-1]](*args)
        text = text[:match.start()] + rf"\mathit{{{name}}}" + text[close + 1:]


def _parse_piece(text: str, known: dict[str, sympy.Basic]) -> sympy.Expr:
    """One piece without calls, parsed by lark; it must have exactly one reading."""
    try:
        parsed = parse_latex(text, backend="lark")
    except Exception as error:  # the lark parser's own exceptions vary
        raise Unparsable(f"{type(error).__name__} on {text!r}") from None
    readings = set()
    for alternative in _alternatives(parsed):
        try:
            readings.add(_rebuild(alternative, known))
        except (KeyError, ValueError):
            continue  # a reading that calls a symbol
    if len(readings) != 1:
        raise Unparsable(f"{len(readings)} readings of {text!r}")
    return readings.pop()


def _rebuild(expr, known: dict[str, sympy.Basic]) -> sympy.Basic:
    if isinstance(expr, sympy.Symbol):
        return sympy.E if expr.name == "e" else known[expr.name]
    if isinstance(expr, AppliedUndef):
        raise ValueError(f"a symbol called as a function: {expr}")
    if not isinstance(expr, sympy.Expr):
        raise ValueError(f"not an expression: {expr!r}")
    if not expr.args:
        return expr
    return expr.func(*(_rebuild(a, known) for a in expr.args))


# ---------------------------------------------------------------- numbers

def _full(x) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, np.float64), SHAPE)


def _axes(code) -> tuple[int, ...]:
    code = int(code)
    return tuple(range(1, len(SHAPE))) if code < 0 else \
        tuple(a % len(SHAPE) for a in AXES[code - 100])


class _Broadcasting:
    """``numpy.logical_and`` & co for lambdify's ``.reduce((a, b, ...))`` over mixed shapes."""

    def __init__(self, function) -> None:
        self.function = function

    def __call__(self, *args):
        return self.function(*args)

    def reduce(self, args):
        return functools.reduce(self.function, args)


NAMESPACE = {**NUMPY, "one_hot": lambda k: _one_hot(_full(k)),
             "step": lambda x, at_zero=0.5: np.heaviside(x, at_zero),
             "logical_and": _Broadcasting(np.logical_and),
             "logical_or": _Broadcasting(np.logical_or),
             **{f"reduce_{op.name}": (lambda x, code, _k=op.name:
                                      _full(_reduce(_k, _full(x), _axes(code))))
                for op in OPS if op.kind == "reduction"}}


def with_reductions_inline(expr: sympy.Basic, table: ReductionTable) -> sympy.Basic:
    """``expr`` with each reduction symbol replaced by a call evaluated over arrays."""
    inline: dict[sympy.Symbol, sympy.Expr] = {}
    for reduction in table.in_order():
        code = None if reduction.axis is None else 100 + _register(reduction.axis)
        inline[reduction.symbol] = _reduction(reduction.kind)(reduction.arg.xreplace(inline), code)
    return expr.xreplace(inline)


def _register(axis: tuple[int, ...]) -> int:
    if axis not in AXES:
        AXES.append(axis)
    return AXES.index(axis)


_STEP = sympy.Function("step")


def evaluate(expr: sympy.Basic, points: list[dict]) -> list[np.ndarray]:
    """``expr`` at each point (same symbols), in float64 NumPy over the shape SHAPE."""
    # lambdify would rewrite Heaviside as Piecewise and simplify that, for seconds.
    expr = expr.replace(sympy.Heaviside, lambda *args: _STEP(*args))
    function = sympy.lambdify(list(points[0]), expr, modules=[NAMESPACE, "numpy"])
    with np.errstate(all="ignore"):
        return [_full(function(*point.values())) for point in points]


def random_point(vocabulary: Vocabulary, rng: np.random.Generator, labels: bool) -> dict:
    """Inputs in (0, 1), or with ``labels`` a ``y_true`` of class indices (for one_hot)."""
    point: dict[sympy.Symbol, object] = {}
    for _, symbol in vocabulary.symbols.values():
        if symbol == ELEMENTWISE_INPUTS["y_true"] and labels:
            point[symbol] = rng.integers(0, SHAPE[-1], SHAPE[:-1] + (1,)).astype(np.float64)
        elif symbol in ELEMENTWISE_INPUTS.values():
            point[symbol] = rng.uniform(0.05, 0.95, SHAPE)
        elif isinstance(symbol, Count):
            axis = symbol.axis
            point[symbol] = float(np.prod([SHAPE[a % len(SHAPE)] for a in (
                range(1, len(SHAPE)) if axis is None else axis)]))
        else:  # a parameter, or a name bound in the typeset block (NumPy: no complex powers)
            point[symbol] = np.float64(rng.uniform(0.5, 2.0))
    return point


def _plain(expr: sympy.Basic) -> sympy.Basic:
    """``expr`` with the x == 0 conventions of xdivy, xlogy and xlog1py dropped."""
    return (expr.replace(xdivy, lambda x, y: x / y)
                .replace(xlogy, lambda x, y: x * sympy.log(y))
                .replace(xlog1py, lambda x, y: x * sympy.log(1 + y)))


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    both = np.isfinite(a) & np.isfinite(b)
    return bool(np.allclose(a[both], b[both], rtol=1e-6, atol=1e-9))


# ---------------------------------------------------------------- the check

@dataclass
class Tally:
    """How many formulas parsed back (and how), and which did not."""

    parsed: int = 0
    via_cases: int = 0
    unparsed: list[str] = field(default_factory=list)

    def assert_most_parsed(self, share: float = 0.8) -> None:
        total = self.parsed + len(self.unparsed)
        assert total and self.parsed >= share * total, (
            f"only {self.parsed} of {total} formulas parsed back; e.g. {self.unparsed[:3]}")


def check_latex(tex: str, expr: sympy.Basic, table: ReductionTable, tally: Tally,
                seed: int = 0) -> None:
    """Assert that ``tex``, parsed back, has ``expr``'s values (or record that it cannot parse)."""
    vocabulary = Vocabulary.of(expr, table)
    try:
        reading, cases = parse_back(tex, vocabulary)
    except Unparsable as why:
        tally.unparsed.append(f"{tex}  [{why}]")
        return
    rng = np.random.default_rng(seed)
    points = [random_point(vocabulary, rng, labels) for labels in (False, True)]
    expected = evaluate(with_reductions_inline(expr, table), points)
    got = evaluate(with_reductions_inline(reading, table), points)
    # xdivy/xlogy typeset as x/y and x log y: their "0 where x == 0" is not written, and
    # SymPy cancels a parsed y/y to 1; so the plain reading counts as agreeing too.
    plain = evaluate(_plain(with_reductions_inline(expr, table)), points)
    assert all(same_values(g, e) or same_values(g, q) for g, e, q in zip(got, expected, plain)), \
        f"LaTeX {tex!r} reads as {reading}, not {expr}"
    if not any(np.isfinite(e).any() for e in expected):  # compared nothing: not a pass
        tally.unparsed.append(f"{tex}  [nowhere finite at the points drawn]")
        return
    tally.parsed += 1
    tally.via_cases += bool(cases)


def formulas(report) -> list[tuple[str, sympy.Expr]]:
    return [(report.latex(f), f) for _, _, f in report.formulas()]


# ---------------------------------------------------------------- tests

BRACKET_CASES = [
    ("mean((1-y_true)*log(1-y_pred))",
     r"\left(1 - y_{\mathrm{true}}\right) \operatorname{log1p}"),
    ("sum((y_true+1)*log(y_pred))", r"\left(y_{\mathrm{true}} + 1\right) \log"),
    ("mean(xlog1py(y_true - 1, y_pred))", r"\left(y_{\mathrm{true}} - 1\right) \operatorname{log1p}"),
    # was `y_pred - y_true log(y_pred)`: a minus sign inside a product
    ("mean(y_pred*xlogy(-y_true, y_pred))",
     r"y_{\mathrm{pred}} \left(- y_{\mathrm{true}}\right) \log"),
    ("mean(xlogy(where(y_true > 0.5, y_pred, 2), y_pred))", r"\end{cases}\right) \log"),
    ("sum(y_pred)*y_true", r"\left(\sum\left(y_{\mathrm{pred}}\right)\right) y_{\mathrm{true}}"),
    ("sum(y_pred)^2", r"\left(\sum\left(y_{\mathrm{pred}}\right)\right)^{2}"),
]


@pytest.mark.parametrize("source, fragment", BRACKET_CASES)
def test_a_bare_argument_or_a_large_operator_gets_its_brackets(source, fragment):
    """The defect: `1 - y_true log1p(-y_pred)` for (1 - y_true)*log1p(-y_pred)."""
    analysis = analyze(source)
    tex = formula_latex(analysis.expression, analysis.table)
    assert fragment in tex
    tally = Tally()
    check_latex(tex, analysis.expression, analysis.table, tally)
    assert tally.parsed == 1, tally.unparsed


@pytest.mark.filterwarnings("ignore::lossdsl.errors.LossDSLWarning")  # log(y_pred) at 0
def test_the_keras_loss_shows_in_jupyter_what_it_computes():
    """DSLLoss._repr_latex_ (what Jupyter typesets), parameter gradients included."""
    source = "alpha = 0.25; mean(-alpha*(1-y_true)*log(1-y_pred) - (y_true+1)*log(y_pred))"
    loss = lossdsl.compile(source)
    shown = loss._repr_latex_()
    assert shown.startswith("$$\n") and shown.endswith("\n$$")
    report = explain(source)
    named = shared_names(report)
    assert len(named.formulas) == 3
    tally = Tally()
    check_named(shown[3:-3], named, tally)
    assert tally.parsed == len(named.bindings) + 3, tally.unparsed


def _rows(aligned: str) -> list[str]:
    """The right-hand sides of an ``aligned`` block's rows."""
    body = aligned.split("\\begin{aligned}\n", 1)[1].rsplit("\n\\end{aligned}", 1)[0]
    return [row.split("&= ", 1)[1] for row in body.split(" \\\\\n") if "&= " in row]


def shared_names(report):
    """The names ``to_latex`` shows: the loss, its gradient and the parameter gradients together."""
    shown = [report.loss, report.gradient, *report.parameter_gradients.values()]
    return name_formulas([f.sympy for f in shown], report.table, user_bindings(report.analysis),
                         name_counts=False)


def check_named(tex: str, named, tally: Tally) -> None:
    """Each row of a named block (bindings, then formulas) reads as the value it stands for."""
    rows = _rows(tex) if tex.startswith("\\begin{aligned}") else [tex]
    expected = [value for _, value in named.bindings] + list(named.formulas)
    assert len(rows) == len(expected), (rows, expected)
    for row, expr in zip(rows, expected):
        check_latex(row, expr, named.table, tally)


def check_report(source: str, tally: Tally, **params) -> None:
    """Every formula of ``explain(source)`` as LaTeX, to_latex and Markdown shows it.

    A formula is typeset with its names (the user's bindings, repeated parts): each
    binding row is checked against the value it names, the formula against the
    formula over those names.
    """
    report = explain(source, **params)
    markdown_blocks = re.findall(r"\$\$\n(.*?)\n\$\$", report.to_markdown(), re.S)
    assert markdown_blocks == [f.latex() for _, _, f in report.formulas()]
    user = user_bindings(report.analysis)
    for tex, (_, _, formula) in zip(markdown_blocks, report.formulas()):
        named = name_formulas([formula.sympy], report.table, user, name_counts=False)
        assert tex == named_latex(named)
        check_named(tex, named, tally)
    # to_latex shows the loss, the simplified gradient and the parameter gradients.
    check_named(report.to_latex(), shared_names(report), tally)


def test_every_library_loss_typesets_what_it_computes():
    tally = Tally()
    for spec in available():
        for options in _option_sets(spec):
            check_report(spec.source_for(**options), tally)
    print(f"library: {tally}")
    tally.assert_most_parsed()


def _option_sets(spec) -> list[dict]:
    sets = [{}]
    for key, value in spec.options.items():
        if isinstance(value, bool):
            sets += [{**s, key: not value} for s in sets]
    return sets


def test_generated_losses_typeset_what_they_compute():
    """Every generated formula that parses back agrees; most of them parse (counted in one test)."""
    tally = Tally()

    @scaled(0.5)
    @given(programs(depth=3))
    def check(program):
        try:
            explain(str(program))
        except lossdsl.LossDSLError as error:  # a program lossdsl refuses has no LaTeX
            assert "Internal error" not in error.message, error
            event(f"refused: {type(error).__name__}")
            return
        check_report(str(program), tally)

    check()
    print(f"generated: {tally}")
    tally.assert_most_parsed(0.7)
