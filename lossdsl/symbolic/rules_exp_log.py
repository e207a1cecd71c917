"""Stability rewrites of the exp/log family: log(sigmoid), log(1 + exp), logsumexp, softmax...

Each matcher takes a node and the :class:`ReductionTable` and returns the
rewritten node, or None when the node does not match; :data:`lossdsl.symbolic.rules.RULES`
names them. PyTensor's ``register_stabilize`` rewrites (``pytensor/tensor/rewriting/math.py``
and ``special.py``) are the model.
"""

from __future__ import annotations

from typing import Callable

import sympy

from lossdsl.ops import expm1, log1p, sigmoid, softplus
from lossdsl.symbolic.translate import ReductionTable, count_symbol

Match = Callable[[sympy.Expr, ReductionTable], "sympy.Expr | None"]


def _without_one(add: sympy.Expr, one: sympy.Expr = sympy.S.One) -> sympy.Expr | None:
    """``add - one`` when ``add`` is a sum with the term ``one`` and something else."""
    if isinstance(add, sympy.Add) and one in add.args:
        return add - one
    return None


def _log_sigmoid(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    (arg,) = node.args
    return -softplus(-arg.args[0]) if isinstance(arg, sigmoid) else None


def _log_one_minus_sigmoid(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    rest = node.args[0] if isinstance(node, log1p) else _without_one(node.args[0])
    if rest is not None and isinstance(-rest, sigmoid):
        return -softplus((-rest).args[0])
    return None


def _one_minus_sigmoid(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    # 1 - sum(c_i*sigmoid(z_i)) with sum(c_i) == 1 is sum(c_i*sigmoid(-z_i)): with c = 1
    # this is 1 - sigmoid(x); with c = (y, 1 - y) it is the focal loss's 1 - p_t.
    terms = list(node.args)
    if sympy.S.One not in terms:
        return None
    weighted = [(term, *_negated_sigmoid_term(term)) for term in terms]
    weighted = [(term, c, z) for term, c, z in weighted if c is not None]
    if not weighted or sympy.expand(sum(c for _, c, _ in weighted)) != 1:
        return None
    rest = [t for t in terms if all(t is not w for w, _, _ in weighted)]
    rest.remove(sympy.S.One)
    return sympy.Add(*(c * sigmoid(-z) for _, c, z in weighted), *rest)


def _negated_sigmoid_term(term: sympy.Expr) -> tuple[sympy.Expr | None, sympy.Expr | None]:
    """``(c, z)`` when ``term`` is ``-c*sigmoid(z)``."""
    factors = sympy.Mul.make_args(-term)
    sigmoids = [f for f in factors if isinstance(f, sigmoid)]
    if len(sigmoids) != 1:
        return None, None
    return sympy.Mul(*[f for f in factors if f is not sigmoids[0]]), sigmoids[0].args[0]


def _pair(function: type, reflect: Callable[[sympy.Expr, sympy.Expr], tuple[sympy.Expr, sympy.Expr]]
          ) -> Match:
    """a*f(-z) + b*f(z) -> c*f(z) + d when c is a number: one call of f, not two.

    ``reflect(a, z)`` gives ``(s, d)`` with ``a*f(-z) = s*a*f(z) + d``:
    sigmoid(-z) = 1 - sigmoid(z), softplus(-z) = softplus(z) - z.
    """
    def match(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
        found: dict[sympy.Expr, list[sympy.Expr]] = {}
        for term in node.args:
            calls = [f for f in sympy.Mul.make_args(term) if isinstance(f, function)]
            if len(calls) == 1:
                found.setdefault(calls[0].args[0], []).append(term)
        for z, terms in found.items():
            partners = found.get(-z)
            # z = -z (f(0)): the term would be its own partner, counted twice
            if not partners or z.could_extract_minus_sign() or z == -z:
                continue
            a = sympy.Add(*(t / function(-z) for t in partners))
            b = sympy.Add(*(t / function(z) for t in terms))
            sign, shift = reflect(a, z)
            coefficient = sympy.expand(b + sign * a)
            if not coefficient.is_number:
                continue
            rest = [t for t in node.args if t not in terms and t not in partners]
            return sympy.Add(coefficient * function(z), shift, *rest)
        return None
    return match



def _tanh_from_sigmoid(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    # 1 - 2*sigmoid(-2a) = tanh(a): what d/dx of the stable log-cosh becomes.
    rest = _without_one(node)
    if rest is None:
        return None
    for term in sympy.Add.make_args(rest):
        coefficient, factor = term.as_coeff_Mul()
        if coefficient == -2 and isinstance(factor, sigmoid):
            return rest - term + sympy.tanh(-factor.args[0] / 2)
    return None


def _sign_times_tanh_abs(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    factors = list(node.args)
    for factor in factors:
        if isinstance(factor, sympy.tanh) and isinstance(factor.args[0], sympy.Abs):
            x = factor.args[0].args[0]
            if sympy.sign(x) in factors:
                others = [f for f in factors if f != factor and f != sympy.sign(x)]
                return sympy.Mul(sympy.tanh(x), *others)
    return None


def _log_one_plus_exp(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    (arg,) = node.args
    inner = arg if isinstance(node, log1p) else _without_one(arg)
    return softplus(inner.args[0]) if isinstance(inner, sympy.exp) else None


def _log_one_plus(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    rest = _without_one(node.args[0])
    return log1p(rest) if rest is not None and rest.free_symbols else None


def _exp_minus_one(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    for one, sign in ((sympy.S.NegativeOne, 1), (sympy.S.One, -1)):
        rest = _without_one(node, one)
        if rest is None:
            continue
        for term in sympy.Add.make_args(rest):
            if isinstance(sign * term, sympy.exp):
                others = rest - term
                return others + sign * expm1((sign * term).args[0])
    return None


def _reciprocal_one_plus_exp(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    if node.exp != -1:
        return None
    rest = _without_one(node.base)
    return sigmoid(-rest.args[0]) if isinstance(rest, sympy.exp) else None


def _exp_over_one_plus_exp(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    # Also matches exp(x)*sigmoid(-x), the form after 1/(1+exp(x)) -> sigmoid(-x).
    factors = list(node.args)
    for factor in factors:
        if not isinstance(factor, sympy.exp):
            continue
        a = factor.args[0]
        for partner in (sigmoid(-a), 1 / (1 + sympy.exp(a))):
            if partner in factors:
                others = [f for f in factors if f is not factor and f != partner]
                return sympy.Mul(sigmoid(a), *others)
    return None


def _sum_of_exp(symbol: sympy.Expr, table: ReductionTable):
    """The reduction behind ``symbol`` if it is ``sum(exp(a))`` or ``mean(exp(a))``."""
    if symbol in table:
        reduction = table[symbol]
        if reduction.kind in ("sum", "mean") and isinstance(reduction.arg, sympy.exp):
            return reduction
    return None


def _logsumexp_of(reduction, table: ReductionTable) -> sympy.Expr:
    value = table.reduce("logsumexp", reduction.arg.args[0], reduction.axis)
    # log(mean(exp(a))) = logsumexp(a) - log(n)
    return value - sympy.log(count_symbol(reduction.axis)) if reduction.kind == "mean" else value


def _log_sum_exp(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    reduction = _sum_of_exp(node.args[0], table)
    return _logsumexp_of(reduction, table) if reduction else None


def _softmax_parts(node: sympy.Expr, table: ReductionTable):
    """``(exp(a), sum(exp(a)), other factors)`` when ``node`` is exp(a)/sum(exp(a))*..."""
    if not isinstance(node, sympy.Mul):
        return None
    for factor in node.args:
        if isinstance(factor, sympy.Pow) and factor.exp == -1:
            reduction = _sum_of_exp(factor.base, table)
            if reduction is not None and reduction.kind == "sum" and reduction.arg in node.args:
                others = [f for f in node.args if f is not factor and f != reduction.arg]
                return reduction, others
    return None


def _softmax(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    parts = _softmax_parts(node, table)
    if parts is None:
        return None
    reduction, others = parts
    return sympy.Mul(sympy.exp(reduction.arg.args[0] - _logsumexp_of(reduction, table)), *others)


def _log_softmax(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    parts = _softmax_parts(node.args[0], table)
    if parts is None or parts[1]:
        return None
    reduction = parts[0]
    return reduction.arg.args[0] - _logsumexp_of(reduction, table)


def _log_cosh(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    (arg,) = node.args
    if not isinstance(arg, sympy.cosh):
        return None
    magnitude = sympy.Abs(arg.args[0])
    return magnitude + softplus(-2 * magnitude) - sympy.log(2)
