"""The function table: every function of the language, defined once.

Each row of :data:`OPS` gives a DSL function's name, arity, kind, SymPy form,
TensorFlow form (a dotted path under ``tensorflow``, resolved only when a Keras
object is built), LaTeX template and one-line doc. Functions that SymPy lacks
(``sigmoid``, ``softplus``, ``xlogy`` ...) are SymPy ``Function`` classes made
here; their derivative rules are a column of the same row, so a derivative
stays in the stable form written there (``d/dx log(sigmoid(x)) = sigmoid(-x)``)
instead of being re-derived from ``exp``.

Nothing here imports TensorFlow.

    >>> from lossdsl.ops import REGISTRY
    >>> REGISTRY["softplus"].doc
    'log(1 + exp(x)), computed without overflow'
    >>> REGISTRY["mean"].kind
    'reduction'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import sympy
from mpmath.libmp import prec_to_dps

Kind = Literal["elementwise", "reduction", "normalizer"]

# A derivative rule takes the SymPy arguments of a call and returns d f / d arg_i.
DerivativeRule = Callable[..., sympy.Expr]


@dataclass(frozen=True)
class Op:
    """One function of the language.

    Attributes:
        name: the DSL spelling.
        arity: the number of positional arguments.
        kind: ``elementwise``; ``reduction`` (reduces axes, takes ``axis=``);
            ``normalizer`` (``softmax``-like: same shape, takes ``axis=``).
        sympy: builds the SymPy form from SymPy arguments; for reductions this is
            None, because reductions are lifted to symbols (see ``symbolic``).
        tf: dotted path of the TensorFlow function, under ``tensorflow``.
        latex: ``str.format`` template over the LaTeX of the arguments.
        doc: one line for ``lossdsl ops`` and the README.
        derivatives: for functions lossdsl defines itself, d f / d arg_i.
        default_axis: for ``normalizer`` ops, the axis when none is given.
        by_position: the value depends on each element's position in the sample
            (``one_hot``), so it is never constant along an axis and its TF form
            receives its arguments broadcast to the sample's full shape.
        arguments: the arguments' names, for ``lossdsl ops`` and the README.
        elementary: for functions lossdsl defines itself, the same function in
            SymPy's own terms; it gives calls on numbers a value (``expm1(2)``), so
            constants are checked and compared like any other number.
        derivative_blows_up: its derivative can be infinite or NaN at finite
            arguments (``log`` at 0, ``exp`` by overflow); a ``where`` branch that
            calls it gets the double-where guard in a differentiated plan.
    """

    name: str
    arity: int
    kind: Kind
    sympy: Callable[..., sympy.Basic] | None
    tf: str | None
    latex: str
    doc: str
    derivatives: tuple[DerivativeRule, ...] = field(default=(), repr=False)
    default_axis: int | None = None
    by_position: bool = False
    arguments: tuple[str, ...] = ("x",)
    elementary: Callable[..., sympy.Expr] | None = field(default=None, repr=False)
    derivative_blows_up: bool = False

    def __post_init__(self) -> None:
        assert len(self.arguments) == self.arity, f"{self.name}: one name per argument"

    @property
    def signature(self) -> str:
        """How a call reads, e.g. ``clip(x, lo, hi)``."""
        return f"{self.name}({', '.join(self.arguments)})"


class DSLFunction(sympy.Function):
    """A SymPy function whose derivative and LaTeX come from its :data:`OPS` row."""

    is_real = True

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        rules = REGISTRY[type(self).__name__].derivatives
        return rules[argindex - 1](*self.args)

    def _eval_evalf(self, prec: int) -> sympy.Expr | None:
        # A call on numbers has a value: without one, SymPy cannot decide a comparison
        # of constants (where(3 >= expm1(2), ...) recursed without end) nor tell that
        # log1p(-2) is not real.
        elementary = REGISTRY[type(self).__name__].elementary
        # one_hot(2) has no free symbols but is no number: its value depends on position.
        if elementary is None or not all(arg.is_number for arg in self.args) \
                or varies_by_position(self):
            return None
        try:
            return elementary(*self.args).evalf(prec_to_dps(prec))
        except ZeroDivisionError:  # mpmath's float division by 0.0: no finite value
            return sympy.zoo

    def _latex(self, printer: sympy.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        from lossdsl.analysis.latex import format_template  # lossdsl.analysis.latex imports this module

        tex = format_template(REGISTRY[type(self).__name__].latex, printer, self.args)
        # SymPy passes `exp` when this call is the base of a power.
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"


def _own(name: str, nargs: int) -> type[DSLFunction]:
    """A SymPy function class for a DSL function SymPy does not have."""
    return type(name, (DSLFunction,), {"nargs": nargs})


sigmoid = _own("sigmoid", 1)
softplus = _own("softplus", 1)
relu = _own("relu", 1)
log1p = _own("log1p", 1)
expm1 = _own("expm1", 1)
maximum = _own("maximum", 2)
minimum = _own("minimum", 2)
clip = _own("clip", 3)
xlogy = _own("xlogy", 2)
xdivy = _own("xdivy", 2)
one_hot = _own("one_hot", 1)
xlog1py = _own("xlog1py", 2)


def step(x: sympy.Expr, at_zero: int) -> sympy.Expr:
    """Heaviside step with an explicit value at 0, matching TF's gradient at kinks."""
    return sympy.Heaviside(x, at_zero)


def _zero_where_x_is_zero(x: sympy.Expr, value: sympy.Expr) -> sympy.Expr:
    # TF's xlogy/xdivy give 0 where x == 0 whatever y is; the derivative keeps that.
    return sympy.Piecewise((0, sympy.Eq(x, 0)), (value, True))


def _where(condition: sympy.Basic, if_true: sympy.Expr, if_false: sympy.Expr) -> sympy.Expr:
    return sympy.Piecewise((if_true, condition), (if_false, True))


# TF computes clip_by_value as maximum(minimum(x, hi), lo); the rules follow that
# composition so they also match the tape when lo > hi (the value is then lo).
_CLIP_DERIVATIVES: tuple[DerivativeRule, ...] = (
    lambda x, lo, hi: step(minimum(x, hi) - lo, 1) * step(hi - x, 1),
    lambda x, lo, hi: step(lo - minimum(x, hi), 0),
    lambda x, lo, hi: step(minimum(x, hi) - lo, 1) * step(x - hi, 0),
)

_E = "elementwise"

OPS: tuple[Op, ...] = (
    Op("abs", 1, _E, sympy.Abs, "math.abs", r"\left|{0}\right|", "absolute value"),
    Op("exp", 1, _E, sympy.exp, "math.exp", r"e^{{{0}}}", "exponential",
       derivative_blows_up=True),
    Op("log", 1, _E, sympy.log, "math.log", r"\log\left({0}\right)", "natural logarithm",
       derivative_blows_up=True),
    Op("log1p", 1, _E, log1p, "math.log1p", r"\operatorname{{log1p}}\left({0}\right)",
       "log(1 + x), accurate near 0", (lambda x: 1 / (1 + x),),
       elementary=lambda x: sympy.log(1 + x),
       derivative_blows_up=True),
    Op("expm1", 1, _E, expm1, "math.expm1", r"\operatorname{{expm1}}\left({0}\right)",
       "exp(x) - 1, accurate near 0", (lambda x: sympy.exp(x),),
       elementary=lambda x: sympy.exp(x) - 1,
       derivative_blows_up=True),
    Op("sqrt", 1, _E, sympy.sqrt, "math.sqrt", r"\sqrt{{{0}}}", "square root"),
    Op("square", 1, _E, lambda x: x**2, "math.square", r"\left({0}\right)^{{2}}", "x^2"),
    Op("sin", 1, _E, sympy.sin, "math.sin", r"\sin\left({0}\right)", "sine"),
    Op("cos", 1, _E, sympy.cos, "math.cos", r"\cos\left({0}\right)", "cosine"),
    Op("tanh", 1, _E, sympy.tanh, "math.tanh", r"\tanh\left({0}\right)", "hyperbolic tangent"),
    Op("cosh", 1, _E, sympy.cosh, "math.cosh", r"\cosh\left({0}\right)", "hyperbolic cosine",
       derivative_blows_up=True),
    Op("sigmoid", 1, _E, sigmoid, "math.sigmoid", r"\sigma\left({0}\right)",
       "logistic function 1/(1 + exp(-x))", (lambda x: sigmoid(x) * sigmoid(-x),),
       elementary=lambda x: 1 / (1 + sympy.exp(-x))),
    Op("softplus", 1, _E, softplus, "math.softplus", r"\operatorname{{softplus}}\left({0}\right)",
       "log(1 + exp(x)), computed without overflow", (lambda x: sigmoid(x),),
       elementary=lambda x: sympy.log(1 + sympy.exp(x))),
    Op("relu", 1, _E, relu, "nn.relu", r"\operatorname{{relu}}\left({0}\right)",
       "max(x, 0); gradient 0 at 0, as in TF", (lambda x: step(x, 0),),
       elementary=lambda x: sympy.Max(x, 0)),
    Op("sign", 1, _E, sympy.sign, "math.sign", r"\operatorname{{sign}}\left({0}\right)",
       "-1, 0 or 1; gradient 0"),
    Op("maximum", 2, _E, maximum, "math.maximum", r"\max\left({0}, {1}\right)",
       "elementwise larger of a and b; a tie sends the gradient to a, as in TF",
       (lambda a, b: step(a - b, 1), lambda a, b: step(b - a, 0)), arguments=("a", "b"),
       elementary=sympy.Max),
    Op("minimum", 2, _E, minimum, "math.minimum", r"\min\left({0}, {1}\right)",
       "elementwise smaller of a and b; a tie sends the gradient to a, as in TF",
       (lambda a, b: step(b - a, 1), lambda a, b: step(a - b, 0)), arguments=("a", "b"),
       elementary=sympy.Min),
    Op("clip", 3, _E, clip, "clip_by_value", r"\operatorname{{clip}}\left({0}, {1}, {2}\right)",
       "x limited to [lo, hi]; gradient 1 inside, bounds included, as in TF",
       _CLIP_DERIVATIVES, arguments=("x", "lo", "hi"),
       elementary=lambda x, lo, hi: sympy.Max(sympy.Min(x, hi), lo)),
    Op("where", 3, _E, _where, "where",
       r"\begin{{cases}} {1} & \text{{if }} {0} \\ {2} & \text{{otherwise}} \end{{cases}}",
       "where(cond, a, b): a where cond holds, else b (cond is a comparison)",
       arguments=("cond", "a", "b")),
    Op("xlogy", 2, _E, xlogy, "math.xlogy", r"{0} \log\left({1}\right)",
       "x*log(y), and 0 where x == 0 (even at y == 0)",
       (lambda x, y: _zero_where_x_is_zero(x, sympy.log(y)), lambda x, y: xdivy(x, y)),
       arguments=("x", "y"), elementary=lambda x, y: _zero_where_x_is_zero(x, x * sympy.log(y)),
       derivative_blows_up=True),
    Op("xlog1py", 2, _E, xlog1py, "math.xlog1py", r"{0} \operatorname{{log1p}}\left({1}\right)",
       "x*log1p(y), and 0 where x == 0 (even at y == -1)",
       (lambda x, y: _zero_where_x_is_zero(x, log1p(y)), lambda x, y: xdivy(x, 1 + y)),
       arguments=("x", "y"),
       elementary=lambda x, y: _zero_where_x_is_zero(x, x * sympy.log(1 + y)),
       derivative_blows_up=True),
    Op("xdivy", 2, _E, xdivy, "math.xdivy", r"\frac{{{0}}}{{{1}}}",
       "x/y, and 0 where x == 0 (even at y == 0)",
       (lambda x, y: _zero_where_x_is_zero(x, 1 / y), lambda x, y: -xdivy(x, y**2)),
       arguments=("x", "y"), elementary=lambda x, y: _zero_where_x_is_zero(x, x / y),
       derivative_blows_up=True),
    Op("one_hot", 1, _E, one_hot, "lossdsl.lower.plan.one_hot_last_axis",
       r"\mathbb{{1}}\left[i = {0}\right]",
       "1 where the element's index along the last axis equals k (a class label "
       "such as y_true, or a number), else 0; labels are not differentiated",
       (lambda k: sympy.Integer(0),), by_position=True, arguments=("k",)),
    Op("mean", 1, "reduction", None, "math.reduce_mean",
       r"\operatorname{{mean}}\left({0}\right)", "mean over the sample's axes (or axis=K)"),
    Op("sum", 1, "reduction", None, "math.reduce_sum",
       r"\sum\left({0}\right)", "sum over the sample's axes (or axis=K)"),
    Op("max", 1, "reduction", None, "math.reduce_max",
       r"\max\left({0}\right)", "largest element over the sample's axes (or axis=K)"),
    Op("min", 1, "reduction", None, "math.reduce_min",
       r"\min\left({0}\right)", "smallest element over the sample's axes (or axis=K)"),
    Op("logsumexp", 1, "reduction", None, "math.reduce_logsumexp",
       r"\operatorname{{logsumexp}}\left({0}\right)",
       "log(sum(exp(x))) over the sample's axes (or axis=K), without overflow"),
    Op("softmax", 1, "normalizer", None, "nn.softmax",
       r"\operatorname{{softmax}}\left({0}\right)",
       "exp(x)/sum(exp(x)) along axis=-1 (or axis=K)", default_axis=-1),
    Op("log_softmax", 1, "normalizer", None, "nn.log_softmax",
       r"\operatorname{{log\_softmax}}\left({0}\right)",
       "x - logsumexp(x) along axis=-1 (or axis=K)", default_axis=-1),
)

REGISTRY: dict[str, Op] = {op.name: op for op in OPS}
assert len(REGISTRY) == len(OPS), "duplicate function name in OPS"

# SymPy head -> row, for lowering SymPy trees to TF; derived, never hand-written.
BY_SYMPY_HEAD: dict[type, Op] = {
    op.sympy: op for op in OPS if isinstance(op.sympy, type)
}

INPUT_NAMES: tuple[str, ...] = ("y_true", "y_pred")

_BY_POSITION: tuple[type, ...] = tuple(op.sympy for op in OPS if op.by_position)


# SymPy heads that no row names but derivatives produce (d/dx cosh(x) = sinh(x)), and
# whose own derivative can blow up.
_INTERNAL_BLOWING_UP: tuple[type, ...] = (sympy.sinh, sympy.tan)


def derivative_may_blow_up(node: sympy.Basic) -> bool:
    """Whether the derivative of this one node (not its children) can be infinite or NaN.

    True for the rows marked ``derivative_blows_up``, for powers other than
    non-negative integer ones (``sqrt`` at 0, ``x**-1`` at 0), and for the few SymPy
    heads derivatives introduce.

        >>> derivative_may_blow_up(sympy.log(sympy.Symbol("x"))), derivative_may_blow_up(sympy.Symbol("x")**2)
        (True, False)
    """
    if isinstance(node, sympy.Pow):
        return not (node.exp.is_integer and node.exp.is_nonnegative)
    if isinstance(node, _INTERNAL_BLOWING_UP):
        return True
    row = BY_SYMPY_HEAD.get(type(node))
    return row is not None and row.derivative_blows_up


def varies_by_position(expr: sympy.Basic) -> bool:
    """Whether ``expr`` calls a function whose value depends on the element's position.

        >>> varies_by_position(one_hot(sympy.Integer(0)) * 2)
        True
    """
    return bool(_BY_POSITION) and sympy.sympify(expr).has(*_BY_POSITION)
