"""The function table :data:`OPS`, and the lookups derived from it."""

from __future__ import annotations

import sympy

import lossdsl.ops.rules as r
from lossdsl.ops.functions import (DSLFunction, clip, expm1, lgamma, log1p, maximum, minimum,
                                   one_hot, relu, sigmoid, softplus, step, stop_gradient, xdivy,
                                   xlog1py, xlogy)
from lossdsl.ops.row import Op
from lossdsl.ops.vectors import PerClass, PerClassValues

_E = "elementwise"
_NP = "lossdsl.ops.numpy_forms."
_KERAS = "lossdsl.backends.keras_ops.functions."  # what keras.ops lacks or breaks ties differently
_P = "pairwise"
_PAIRS_TF = "lossdsl.backends.tensorflow.pairs."
_PAIRS_KERAS = "lossdsl.backends.keras_ops.pairs."

OPS: tuple[Op, ...] = (
    Op("abs", 1, _E, sympy.Abs, "math.abs", "", "absolute value",
       (lambda x: sympy.sign(x),), kinks=r.KINK_AT_ZERO, numpy="abs",
       keras=_KERAS + "absolute"),
    Op("exp", 1, _E, sympy.exp, "math.exp", "", "exponential",
       derivative_blows_up=True, numpy="exp"),
    Op("log", 1, _E, sympy.log, "math.log", "", "natural logarithm",
       derivative_blows_up=True, domain=r.log_domain(0), numpy="log"),
    Op("log1p", 1, _E, log1p, "math.log1p", r"\operatorname{{log1p}}\left({0}\right)",
       "log(1 + x), accurate near 0", (lambda x: 1 / (1 + x),),
       elementary=lambda x: sympy.log(1 + x),
       derivative_blows_up=True, domain=r.log_domain(-1), numpy="log1p"),
    # log2/log10 are log(x)/log(b) in SymPy: the log node carries the domain, the stability
    # rewrites (log(sigmoid) -> -softplus) and the derivative; their TF path documents the op.
    Op("log2", 1, _E, lambda x: sympy.log(x, 2), "experimental.numpy.log2", "",
       "base-2 logarithm", domain=r.log_domain(0), numpy="log2"),
    Op("log10", 1, _E, lambda x: sympy.log(x, 10), "experimental.numpy.log10", "",
       "base-10 logarithm", domain=r.log_domain(0), numpy="log10"),
    Op("expm1", 1, _E, expm1, "math.expm1", r"\operatorname{{expm1}}\left({0}\right)",
       "exp(x) - 1, accurate near 0", (lambda x: sympy.exp(x),),
       elementary=lambda x: sympy.exp(x) - 1,
       derivative_blows_up=True, numpy="expm1"),
    Op("sqrt", 1, _E, sympy.sqrt, "math.sqrt", "", "square root", numpy="sqrt"),
    Op("pow", 2, _E, r.power, "math.pow", "", "a^b, the same as the operator ^",
       arguments=("a", "b"), numpy="power", keras="power"),
    Op("square", 1, _E, lambda x: x**2, "math.square", "", "x^2", numpy="square"),
    Op("sin", 1, _E, sympy.sin, "math.sin", "", "sine", numpy="sin",
       keras=_KERAS + "sin"),
    Op("cos", 1, _E, sympy.cos, "math.cos", "", "cosine", numpy="cos",
       keras=_KERAS + "cos"),
    Op("tanh", 1, _E, sympy.tanh, "math.tanh", "", "hyperbolic tangent", numpy="tanh",
       keras=_KERAS + "tanh"),
    Op("cosh", 1, _E, sympy.cosh, "math.cosh", "", "hyperbolic cosine",
       derivative_blows_up=True, numpy="cosh", keras=_KERAS + "cosh"),
    Op("sinh", 1, _E, sympy.sinh, "math.sinh", "", "hyperbolic sine",
       derivative_blows_up=True, numpy="sinh", keras=_KERAS + "sinh"),
    Op("erf", 1, _E, sympy.erf, "math.erf", "", "error function 2/sqrt(pi) * integral of exp(-t^2)",
       numpy=_NP + "erf"),
    Op("erfc", 1, _E, sympy.erfc, "math.erfc", "", "1 - erf(x), accurate where erf(x) is near 1",
       numpy=_NP + "erfc"),
    Op("lgamma", 1, _E, lgamma, "math.lgamma", r"\ln\Gamma\left({0}\right)",
       "log of the gamma function, for x > 0 (lgamma(k + 1) = log(k!))", (r.digamma,),
       elementary=sympy.loggamma, derivative_blows_up=True, domain=r.LGAMMA_DOMAIN,
       numpy=_NP + "lgamma", keras=_KERAS + "lgamma"),
    Op("stop_gradient", 1, _E, stop_gradient, "stop_gradient",
       r"\operatorname{{sg}}\left[{0}\right]",
       "x, with derivative 0: nothing is differentiated through it",
       (lambda x: sympy.Integer(0),), elementary=lambda x: x, numpy=_NP + "stop_gradient"),
    Op("sigmoid", 1, _E, sigmoid, "math.sigmoid", r"\sigma\left({0}\right)",
       "logistic function 1/(1 + exp(-x))", (lambda x: sigmoid(x) * sigmoid(-x),),
       elementary=lambda x: 1 / (1 + sympy.exp(-x)), numpy=_NP + "sigmoid"),
    Op("softplus", 1, _E, softplus, "math.softplus", r"\operatorname{{softplus}}\left({0}\right)",
       "log(1 + exp(x)), computed without overflow", (lambda x: sigmoid(x),),
       elementary=lambda x: sympy.log(1 + sympy.exp(x)), numpy=_NP + "softplus"),
    Op("relu", 1, _E, relu, "nn.relu", r"\operatorname{{relu}}\left({0}\right)",
       "max(x, 0); gradient 0 at 0, as in TF", (lambda x: step(x, 0),),
       elementary=lambda x: sympy.Max(x, 0), kinks=r.KINK_AT_ZERO, numpy=_NP + "relu"),
    Op("sign", 1, _E, sympy.sign, "math.sign", "", "-1, 0 or 1; gradient 0",
       (lambda x: sympy.Integer(0),), kinks=r.JUMP_AT_ZERO, numpy="sign"),
    Op("maximum", 2, _E, maximum, "math.maximum", r"\max\left({0}, {1}\right)",
       "elementwise larger of a and b; a tie sends the gradient to a, as in TF",
       (lambda a, b: step(a - b, 1), lambda a, b: step(b - a, 0)), arguments=("a", "b"),
       elementary=sympy.Max, kinks=r.TIE, numpy="maximum", keras=_KERAS + "maximum"),
    Op("minimum", 2, _E, minimum, "math.minimum", r"\min\left({0}, {1}\right)",
       "elementwise smaller of a and b; a tie sends the gradient to a, as in TF",
       (lambda a, b: step(b - a, 1), lambda a, b: step(a - b, 0)), arguments=("a", "b"),
       elementary=sympy.Min, kinks=r.TIE, numpy="minimum", keras=_KERAS + "minimum"),
    Op("clip", 3, _E, clip, "clip_by_value", r"\operatorname{{clip}}\left({0}, {1}, {2}\right)",
       "x limited to [lo, hi]; gradient 1 inside, bounds included, as in TF",
       r.CLIP_DERIVATIVES, arguments=("x", "lo", "hi"),
       elementary=lambda x, lo, hi: sympy.Max(sympy.Min(x, hi), lo), kinks=r.CLIP_KINKS,
       numpy=_NP + "clip", keras=_KERAS + "clip"),
    Op("where", 3, _E, r.where, "where", "",
       "where(cond, a, b): a where cond holds, else b (cond: comparisons, chains such as "
       "0 < x < 1, joined by and, or, not)",
       arguments=("cond", "a", "b"), numpy="where"),
    Op("xlogy", 2, _E, xlogy, "math.xlogy", r"{0} \log\left({1}\right)",
       "x*log(y), and 0 where x == 0 (even at y == 0)",
       (lambda x, y: r.zero_where_x_is_zero(x, sympy.log(y)), lambda x, y: xdivy(x, y)),
       arguments=("x", "y"), elementary=lambda x, y: r.zero_where_x_is_zero(x, x * sympy.log(y)),
       derivative_blows_up=True, domain=r.guarded("log", lambda y: y > 0, lambda y: y),
       numpy=_NP + "xlogy", keras=_KERAS + "xlogy"),
    Op("xlog1py", 2, _E, xlog1py, "math.xlog1py", r"{0} \operatorname{{log1p}}\left({1}\right)",
       "x*log1p(y), and 0 where x == 0 (even at y == -1)",
       (lambda x, y: r.zero_where_x_is_zero(x, log1p(y)), lambda x, y: xdivy(x, 1 + y)),
       arguments=("x", "y"),
       elementary=lambda x, y: r.zero_where_x_is_zero(x, x * sympy.log(1 + y)),
       derivative_blows_up=True, domain=r.guarded("log1p", lambda y: y > -1, lambda y: 1 + y),
       numpy=_NP + "xlog1py", keras=_KERAS + "xlog1py"),
    Op("xdivy", 2, _E, xdivy, "math.xdivy", r"\frac{{{0}}}{{{1}}}",
       "x/y, and 0 where x == 0 (even at y == 0)",
       (lambda x, y: r.zero_where_x_is_zero(x, 1 / y), lambda x, y: -xdivy(x, y**2)),
       arguments=("x", "y"), elementary=lambda x, y: r.zero_where_x_is_zero(x, x / y),
       derivative_blows_up=True,
       domain=r.guarded("division", lambda y: sympy.Ne(y, 0), lambda y: y, shown="1/({})"),
       numpy=_NP + "xdivy", keras=_KERAS + "xdivy"),
    Op("one_hot", 1, _E, one_hot, "lossdsl.backends.tensorflow.functions.one_hot_last_axis",
       r"\mathbb{{1}}\left[i = {0}\right]",
       "1 where the element's index along the last axis equals k (a class label "
       "such as y_true, or a number), else 0; labels are not differentiated",
       (lambda k: sympy.Integer(0),), by_position=True, arguments=("k",),
       numpy=_NP + "one_hot", keras=_KERAS + "one_hot_last_axis"),
    Op("mean", 1, "reduction", None, "math.reduce_mean",
       r"\operatorname{{mean}}\left({0}\right)", "mean over the sample's axes (or axis=K)",
       r.MEAN_DERIVATIVE, numpy=_NP + "mean", keras=_KERAS + "mean"),
    Op("sum", 1, "reduction", None, "math.reduce_sum",
       r"\sum\left({0}\right)", "sum over the sample's axes (or axis=K)",
       r.SUM_DERIVATIVE, numpy=_NP + "sum"),
    Op("max", 1, "reduction", None, "math.reduce_max",
       r"\max\left({0}\right)", "largest element over the sample's axes (or axis=K)",
       (r.tie_share,), numpy=_NP + "max"),
    Op("min", 1, "reduction", None, "math.reduce_min",
       r"\min\left({0}\right)", "smallest element over the sample's axes (or axis=K)",
       (r.tie_share,), numpy=_NP + "min"),
    Op("logsumexp", 1, "reduction", None, "math.reduce_logsumexp",
       r"\operatorname{{logsumexp}}\left({0}\right)",
       "log(sum(exp(x))) over the sample's axes (or axis=K), without overflow",
       r.LOGSUMEXP_DERIVATIVE, numpy=_NP + "logsumexp"),
    Op("prod", 1, "reduction", None, "math.reduce_prod",
       r"\prod\left({0}\right)", "product over the sample's axes (or axis=K); its symbolic "
       "derivative prod/x is NaN where an element is 0", r.PROD_DERIVATIVE, numpy=_NP + "prod",
       keras=_KERAS + "prod"),
    Op("var", 1, "reduction", None, "math.reduce_variance",
       r"\operatorname{{var}}\left({0}\right)",
       "variance (mean((x - mean(x))^2), no Bessel correction) over the sample's axes (or axis=K)",
       r.VAR_DERIVATIVE, numpy=_NP + "var", keras=_KERAS + "var"),
    Op("std", 1, "reduction", None, "math.reduce_std",
       r"\operatorname{{std}}\left({0}\right)",
       "standard deviation, sqrt(var(x)), over the sample's axes (or axis=K)",
       r.STD_DERIVATIVE, numpy=_NP + "std", keras=_KERAS + "std"),
    Op("norm", 1, "reduction", None, "math.reduce_euclidean_norm",
       r"\left\lVert {0} \right\rVert", "Euclidean norm sqrt(sum(x^2)) over the sample's axes "
       "(or axis=K)", r.NORM_DERIVATIVE, numpy=_NP + "norm", keras=_KERAS + "norm"),
    # Pairs of samples: each sample gets a row over the batch (its last axis: the other sample j).
    # With axis=-2 the other sample runs along the axis before: each sample a then has rows over
    # the batch's triples (a, j, k), where pair_dist(y_pred, axis=-2) - pair_dist(y_pred) is
    # d(a, j) - d(a, k) (batch-all and semi-hard triplet losses).
    # Their argument is an input as given (y_pred, y_true, an extra input), one vector per sample;
    # `tf`/`keras` name the forward function, and the backward (vector-Jacobian) one is `pair_vjp`
    # of the same module. Lifted to symbols like reductions (`Pair` in lossdsl/symbolic/reductions.py).
    Op("pair_dot", 1, _P, None, _PAIRS_TF + "pair_dot", r"\left\langle {0}^{{(i)}}, {0}^{{(j)}} \right\rangle",
       "x_i . x_j: dot product of sample i's vector (last axis) with every sample j's",
       (r.PAIR_BACKWARD,), default_axis=-1, numpy=_NP + "pair_dot", keras=_PAIRS_KERAS + "pair_dot"),
    Op("pair_cos", 1, _P, None, _PAIRS_TF + "pair_cos",
       r"\cos\left({0}^{{(i)}}, {0}^{{(j)}}\right)",
       "cosine similarity of sample i's vector with every sample j's (vectors l2-normalised "
       "as tf.math.l2_normalize: norms below 1e-6 count as 1e-6)",
       (r.PAIR_BACKWARD,), default_axis=-1, numpy=_NP + "pair_cos", keras=_PAIRS_KERAS + "pair_cos"),
    Op("pair_sqdist", 1, _P, None, _PAIRS_TF + "pair_sqdist",
       r"\left\lVert {0}^{{(i)}} - {0}^{{(j)}} \right\rVert^{{2}}",
       "squared Euclidean distance from sample i to every sample j (0 for j = i)",
       (r.PAIR_BACKWARD,), default_axis=-1, numpy=_NP + "pair_sqdist", keras=_PAIRS_KERAS + "pair_sqdist"),
    Op("pair_dist", 1, _P, None, _PAIRS_TF + "pair_dist",
       r"\left\lVert {0}^{{(i)}} - {0}^{{(j)}} \right\rVert",
       "Euclidean distance from sample i to every sample j; gradient 0 where it is 0, "
       "as TF Addons' pairwise_distance", (r.PAIR_BACKWARD,), default_axis=-1,
       numpy=_NP + "pair_dist", keras=_PAIRS_KERAS + "pair_dist"),
    Op("pair_eq", 1, _P, None, _PAIRS_TF + "pair_eq",
       r"\mathbb{{1}}\left[{0}^{{(i)}} = {0}^{{(j)}}\right]",
       "1 where sample j's vector equals sample i's (the same label), else 0; not differentiated",
       default_axis=-1, numpy=_NP + "pair_eq", keras=_PAIRS_KERAS + "pair_eq"),
    Op("pair_self", 0, _P, None, _PAIRS_TF + "pair_self", r"\mathbb{{1}}\left[i = j\right]",
       "1 where the other sample j is sample i itself (the diagonal), else 0",
       arguments=(), default_axis=-1, numpy=_NP + "pair_self", keras=_PAIRS_KERAS + "pair_self"),
    # Lowered to exp(x - logsumexp(x)) and x - logsumexp(x): no TF function, no LaTeX of their own.
    Op("softmax", 1, "normalizer", None, None, "",
       "exp(x)/sum(exp(x)) along axis=-1 (or axis=K)", default_axis=-1, numpy=_NP + "softmax"),
    Op("log_softmax", 1, "normalizer", None, None, "",
       "x - logsumexp(x) along axis=-1 (or axis=K)", default_axis=-1,
       numpy=_NP + "log_softmax"),
)

REGISTRY: dict[str, Op] = {op.name: op for op in OPS}
assert len(REGISTRY) == len(OPS), "duplicate function name in OPS"

# SymPy head -> row, for every consumer of SymPy trees; derived, never hand-written.
BY_SYMPY_HEAD: dict[type, Op] = {
    op.sympy: op for op in OPS if isinstance(op.sympy, type)
}

INPUT_NAMES: tuple[str, ...] = ("y_true", "y_pred")

# Named constants: names, not rows, since they take no argument. A binding shadows one for
# the whole source, as a local name does in Python (`e = y_pred - y_true; mean(e^2)` is common,
# the loss library's huber among them); a binding is always written before any use of it.
CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "e": sympy.E}

# A vector parameter (w=[1, 2, 5]) takes one value per position along the last axis too.
_BY_POSITION: tuple[type, ...] = tuple(op.sympy for op in OPS if op.by_position) + (
    PerClass, PerClassValues)

# Each class lossdsl defines finds its derivative, value and LaTeX in its row.
for _op in OPS:
    if isinstance(_op.sympy, type) and issubclass(_op.sympy, DSLFunction):
        assert _op.sympy.row is None and _op.sympy.__name__ == _op.name, _op.name
        _op.sympy.row = _op
DSLFunction.by_position_heads = _BY_POSITION

# SymPy heads that no row names but derivatives produce (d/dx cosh(x) = sinh(x)), and
# whose own derivative can blow up.
_INTERNAL_BLOWING_UP: tuple[type, ...] = (sympy.tan,)


def derivative_may_blow_up(node: sympy.Basic) -> bool:
    """Whether the derivative of this one node (not its children) can be infinite or NaN.

    True for the rows marked ``derivative_blows_up``, for powers other than
    non-negative integer ones (``sqrt`` at 0, ``x**-1`` at 0), and for the few SymPy
    heads derivatives introduce.

        >>> x = sympy.Symbol("x")
        >>> derivative_may_blow_up(sympy.log(x)), derivative_may_blow_up(x**2)
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
