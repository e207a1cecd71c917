"""Stability rewrites: naive formulas become numerically stable ones, each by a named rule.

A loss written the way it reads on paper (``log(sigmoid(x))``, ``log(1 + exp(x))``,
``y*log(p)``) overflows or produces ``0*inf = NaN`` at inputs a model easily reaches
(logits of 100, probabilities of exactly 0). lossdsl sees the whole formula, so it
rewrites it before lowering, the way PyTensor's ``register_stabilize`` rewrites do
(``pytensor/tensor/rewriting/math.py`` and ``special.py``): ``log(sigmoid(x))`` becomes
``-softplus(-x)`` and so on (:data:`RULES` lists them all). The pass runs on the
loss, on the arguments of every reduction in the :class:`ReductionTable`, and again
on the derived gradient; the names of the rules that fired are recorded.

Each rule matches one node. Rules whose pattern *contains* a pattern of another
rule (``log(1 - sigmoid(x))`` contains ``1 - sigmoid(x)``) are tried on the way
down, before the node's arguments are rewritten; the rest are tried on the way up.

    >>> import sympy
    >>> from lossdsl.ops import sigmoid
    >>> from lossdsl.symbolic.translate import ReductionTable
    >>> x = sympy.Symbol("y_pred", real=True)
    >>> result = stabilize(ReductionTable(), [sympy.log(sigmoid(x)), sympy.log(1 + sympy.exp(x))])
    >>> result.exprs
    (-softplus(-y_pred), softplus(y_pred))
    >>> result.fired
    ('log_sigmoid', 'log_one_plus_exp')

A value that is infinite in exact arithmetic (``log(y_pred)`` at ``y_pred = 0``)
cannot be rewritten away; :func:`infinity_warnings` finds the cases that are
visible in the formula, and the compiler turns them into a
:class:`lossdsl.errors.LossDSLWarning`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal, Sequence

import sympy

from lossdsl.ops import expm1, log1p, sigmoid, softplus, xdivy, xlog1py, xlogy
from lossdsl.symbolic.translate import ReductionTable, count_symbol

Phase = Literal["pre", "post"]
Match = Callable[[sympy.Expr, ReductionTable], "sympy.Expr | None"]

MAX_REWRITES_PER_NODE = 16
"""A node is rewritten at most this often (every rule shrinks or stabilizes, so few are needed)."""


@dataclass(frozen=True)
class Rule:
    """One stability rewrite.

    Attributes:
        name: how the rule is reported (``Analysis.rewrites``).
        pattern: what it does, for people: ``"log(sigmoid(x)) -> -softplus(-x)"``.
        heads: the SymPy node types it can match (a quick filter).
        match: returns the rewritten node, or None when the node does not match.
        phases: ``"pre"``: tried before the node's arguments are rewritten;
            ``"post"``: after.
    """

    name: str
    pattern: str
    heads: tuple[type, ...]
    match: Match
    phases: tuple[Phase, ...] = ("pre", "post")


# ---------------------------------------------------------------- matchers

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
            if not partners or z.could_extract_minus_sign():
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


def _combine_powers(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    # SymPy leaves b**g/b alone when b is a sum; at b = 0 it is 0*inf.
    bases = [f.base if isinstance(f, sympy.Pow) else f for f in node.args]
    symbolic = {f.base for f in node.args if isinstance(f, sympy.Pow) and not f.exp.is_number}
    if any(bases.count(base) > 1 for base in symbolic):
        return sympy.powsimp(node, combine="exp", deep=False)
    return None


def _cancel_power_division(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
    # b**g * (u/b + v) -> u*b**(g - 1) + v*b**g: no 0*inf where b is 0 (the focal gradient).
    powers = [f for f in node.args if isinstance(f, sympy.Pow) and not f.exp.is_number]
    for power in powers:
        for factor in node.args:
            if isinstance(factor, sympy.Add) and any(
                    1 / power.base in sympy.Mul.make_args(term) for term in factor.args):
                others = [f for f in node.args if f is not power and f is not factor]
                return sympy.Mul(sympy.Add(*(power * term for term in factor.args)), *others)
    return None


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


def _times_log(log_type: type, safe: type) -> Match:
    """x*log(y) -> xlogy(x, y) (and the log1p twin): 0 where x is 0, even when log(y) is not finite."""
    def match(node: sympy.Expr, table: ReductionTable) -> sympy.Expr | None:
        logs = [f for f in node.args if isinstance(f, log_type)]
        if len(logs) != 1:
            return None
        coefficient, rest = node.as_coeff_Mul()
        factors = [f for f in sympy.Mul.make_args(rest) if f != logs[0]]
        y = logs[0].args[0]
        inside, outside = _guard_factors(factors, 1 + y if log_type is log1p else y, table)
        if not inside:
            return None  # constants and parameters are never 0 per element: nothing to protect
        return coefficient * sympy.Mul(*outside) * safe(sympy.Mul(*inside), y)
    return match


def _guard_factors(factors: list[sympy.Expr], log_argument: sympy.Expr, table: ReductionTable
                   ) -> tuple[list[sympy.Expr], list[sympy.Expr]]:
    """Which factors of x*log(a) go inside xlogy as its x: (inside, outside).

    A factor that is 0 where ``a`` is (``a`` itself, a power of it, a factor of
    it) makes the product 0 there, so it must be the guard: left outside it
    would multiply the guard's -inf, 0*(-inf) = NaN (``y_true*y_pred*log(y_pred)``
    at ``y_pred = 0``, or d/dp of ``relu(x)^p``). Without one, factors that do
    not share a variable with ``a`` (labels) are the guard, so that
    ``y_true*(1 - p)^g*log(p)`` reads ``(1 - p)^g*xlogy(y_true, p)``; failing
    that, every varying factor.
    """
    variables = table.inputs | set(table.reductions)
    varying = [f for f in factors if f.free_symbols & variables]
    zeros = _zero_factors(log_argument)
    vanishing = [f for f in varying if _zero_factors(f) & zeros]
    independent = [f for f in varying if not f.free_symbols & log_argument.free_symbols]
    inside = vanishing or independent or varying
    return inside, [f for f in factors if f not in inside]


def _zero_factors(expr: sympy.Expr) -> set[sympy.Expr]:
    """Expressions whose zeros are zeros of ``expr``: its factors, through positive powers and abs.

    Signs are dropped (``y - 1`` and ``1 - y`` are one factor). A power with a
    symbolic exponent counts: where that exponent is not positive the guard is
    inactive (``x**0 = 1``), which changes nothing.
    """
    if isinstance(expr, sympy.Mul):
        return set().union(*(_zero_factors(f) for f in expr.args))
    if isinstance(expr, sympy.Pow):
        return set() if expr.exp.is_number and not expr.exp.is_positive else \
            _zero_factors(expr.base)
    if isinstance(expr, sympy.Abs):
        return _zero_factors(expr.args[0])
    if expr.is_number:
        return set()
    return {-expr if expr.could_extract_minus_sign() else expr}


RULES: tuple[Rule, ...] = (
    Rule("log_one_minus_sigmoid", "log(1 - sigmoid(x)), log1p(-sigmoid(x)) -> -softplus(x)",
         (sympy.log, log1p), _log_one_minus_sigmoid),
    Rule("log_sigmoid", "log(sigmoid(x)) -> -softplus(-x)", (sympy.log,), _log_sigmoid),
    Rule("log_one_plus_exp", "log(1 + exp(x)), log1p(exp(x)) -> softplus(x)",
         (sympy.log, log1p), _log_one_plus_exp),
    Rule("log_softmax", "log(exp(x)/sum(exp(x))) -> x - logsumexp(x)", (sympy.log,),
         _log_softmax),
    Rule("log_sum_exp", "log(sum(exp(x))) -> logsumexp(x)", (sympy.log,), _log_sum_exp),
    Rule("log_cosh", "log(cosh(x)) -> abs(x) + softplus(-2*abs(x)) - log(2)", (sympy.log,), _log_cosh),
    Rule("exp_over_one_plus_exp", "exp(x)/(1 + exp(x)) -> sigmoid(x)", (sympy.Mul,),
         _exp_over_one_plus_exp),
    Rule("softmax", "exp(x)/sum(exp(x)) -> exp(x - logsumexp(x))", (sympy.Mul,), _softmax),
    # Only on the way up: log(1 - 1/(1 + exp(-x))) must first become log(sigmoid(-x)).
    Rule("log_one_plus", "log(1 + x) -> log1p(x)", (sympy.log,), _log_one_plus,
         phases=("post",)),
    Rule("one_minus_sigmoid", "1 - sigmoid(x) -> sigmoid(-x) (also 1 - y*sigmoid(x) - (1-y)*sigmoid(-x))",
         (sympy.Add,), _one_minus_sigmoid),
    Rule("sigmoid_pair", "a*sigmoid(-x) + b*sigmoid(x) -> (b-a)*sigmoid(x) + a, b-a a number",
         (sympy.Add,), _pair(sigmoid, lambda a, z: (-1, a))),
    Rule("softplus_pair", "a*softplus(-x) + b*softplus(x) -> (a+b)*softplus(x) - a*x, a+b a number",
         (sympy.Add,), _pair(softplus, lambda a, z: (1, -a * z))),
    Rule("combine_powers", "b**g/b -> b**(g-1)", (sympy.Mul,), _combine_powers),
    Rule("cancel_power_division", "b**g*(u/b + v) -> u*b**(g-1) + v*b**g", (sympy.Mul,),
         _cancel_power_division),
    Rule("tanh", "1 - 2*sigmoid(-2x) -> tanh(x)", (sympy.Add,), _tanh_from_sigmoid),
    Rule("sign_times_tanh_abs", "sign(x)*tanh(abs(x)) -> tanh(x)", (sympy.Mul,),
         _sign_times_tanh_abs),
    Rule("exp_minus_one", "exp(x) - 1 -> expm1(x), 1 - exp(x) -> -expm1(x)", (sympy.Add,),
         _exp_minus_one),
    Rule("reciprocal_one_plus_exp", "1/(1 + exp(x)) -> sigmoid(-x)", (sympy.Pow,),
         _reciprocal_one_plus_exp),
    # x*log(y) only after y itself is rewritten: log(sigmoid(z)) must become softplus first.
    Rule("xlogy", "x*log(y) -> xlogy(x, y), 0 where x is 0", (sympy.Mul,),
         _times_log(sympy.log, xlogy), phases=("post",)),
    Rule("xlog1py", "x*log1p(y) -> xlog1py(x, y), 0 where x is 0", (sympy.Mul,),
         _times_log(log1p, xlog1py), phases=("post",)),
)


# ---------------------------------------------------------------- the pass

@dataclass(frozen=True)
class Stabilized:
    """The result of :func:`stabilize`.

    Attributes:
        table: a new table whose reduction arguments are rewritten (symbols are
            renamed after their new text).
        exprs: the given expressions, rewritten, over ``table``'s symbols.
        fired: names of the rules that fired, in first-fired order, once each.
        renamed: old reduction symbol -> its expression over ``table`` (for
            formulas over the old table that were not rewritten).
    """

    table: ReductionTable
    exprs: tuple[sympy.Expr, ...]
    fired: tuple[str, ...]
    renamed: dict = field(default_factory=dict)


def stabilize(table: ReductionTable, exprs: Sequence[sympy.Expr]) -> Stabilized:
    """Rewrite the reductions of ``table`` (in dependency order), then ``exprs``."""
    stable_table = ReductionTable(inputs=table.inputs)
    rewriter = _Rewriter(stable_table)
    renamed: dict[sympy.Symbol, sympy.Expr] = {}
    for reduction in table.in_order():
        arg = rewriter.rewrite(reduction.arg.xreplace(renamed))
        value = stable_table.reduce(reduction.kind, arg, reduction.axis)
        if value != reduction.symbol:
            renamed[reduction.symbol] = value
    rewritten = tuple(rewriter.rewrite(sympy.sympify(e).xreplace(renamed)) for e in exprs)
    return Stabilized(stable_table, rewritten, tuple(rewriter.fired), renamed)


def rewrite_with_rules(expr: sympy.Expr, table: ReductionTable) -> sympy.Expr:
    """``expr`` rewritten by :data:`RULES` over an existing ``table`` (which may gain symbols)."""
    return _Rewriter(table).rewrite(sympy.sympify(expr))


class _Rewriter:
    def __init__(self, table: ReductionTable) -> None:
        self.table = table
        self.fired: list[str] = []
        self.memo: dict[sympy.Basic, sympy.Basic] = {}
        self.by_phase = {phase: [r for r in RULES if phase in r.phases]
                         for phase in ("pre", "post")}

    def rewrite(self, expr: sympy.Basic) -> sympy.Basic:
        if expr.is_Atom:
            return expr
        if expr not in self.memo:
            node = self._apply(expr, "pre")
            args = tuple(self.rewrite(arg) for arg in node.args)
            if args != node.args:
                node = node.func(*args)
            self.memo[expr] = self._apply(node, "post")
        return self.memo[expr]

    def _apply(self, node: sympy.Basic, phase: Phase) -> sympy.Basic:
        for _ in range(MAX_REWRITES_PER_NODE):
            result = self._first_match(node, phase)
            if result is None:
                return node
            if phase == "post" and not result.is_Atom:
                # A rewrite can expose patterns in the new node's arguments.
                result = result.func(*(self.rewrite(arg) for arg in result.args))
            node = result
        return node

    def _first_match(self, node: sympy.Basic, phase: Phase) -> sympy.Basic | None:
        for rule in self.by_phase[phase]:
            if isinstance(node, rule.heads):
                result = rule.match(node, self.table)
                if result is not None and result != node:
                    if rule.name not in self.fired:
                        self.fired.append(rule.name)
                    return result
        return None


# ---------------------------------------------------------------- infinite values

def infinity_warnings(exprs: Sequence[sympy.Expr], table: ReductionTable) -> tuple[str, ...]:
    """Messages for logs and divisions whose argument reaches 0 on the inputs' usual range.

    Statically detectable cases only: the argument is a polynomial in the inputs
    alone (``y_pred``, ``1 - y_pred``, ``y_true - y_pred``) that is 0 somewhere on
    ``[0, 1]`` for each input (probabilities and labels). Arguments made safe by
    ``clip``, ``+ eps``, ``sigmoid``... and branches of ``where`` are not reported.
    """
    messages: list[str] = []
    for expr in _with_reached_reductions(exprs, table):
        for shown, argument in _singular_arguments(expr):
            point = _zero_on_unit_box(argument, table.inputs)
            if point is None:
                continue
            message = (f"`{shown}` is infinite where `{argument}` = 0 (e.g. at {point}), so the "
                       "loss or its gradient can be infinite there; no rewrite can change that. "
                       f"If the inputs can reach that point, {_remedy(argument)}.")
            if message not in messages:
                messages.append(message)
    return tuple(messages)


def _with_reached_reductions(exprs: Sequence[sympy.Expr], table: ReductionTable
                             ) -> list[sympy.Expr]:
    """``exprs`` and the arguments of the reductions they use, directly or through others.

    Only those: the table also holds the reductions of the gradients (d/dgamma
    of ``(1 - y_pred)^gamma`` has a ``log(1 - y_pred)``), which are not the loss.
    """
    pending, reached = list(exprs), set()
    while pending:
        for symbol in pending.pop().free_symbols & set(table.reductions) - reached:
            reached.add(symbol)
            pending.append(table[symbol].arg)
    return list(exprs) + [r.arg for r in table.in_order() if r.symbol in reached]


def _remedy(argument: sympy.Expr) -> str:
    """What to change in the source: clip the input the argument involves (the prediction first)."""
    names = sorted(str(symbol) for symbol in argument.free_symbols)
    if "y_pred" in names:
        return "clip it (`clip(y_pred, 1e-7, 1 - 1e-7)`) or write the loss on logits"
    return f"clip it (`clip({names[0]}, 1e-7, 1 - 1e-7)`)"


def _singular_arguments(expr: sympy.Basic) -> Iterator[tuple[str, sympy.Expr]]:
    """(what to show, argument that must not be 0) for every log-like node or division."""
    if isinstance(expr, sympy.Piecewise):
        # Branch values are guarded by their conditions: only look at the conditions.
        for pair in expr.args:
            yield from _singular_arguments(pair.cond)
        return
    if isinstance(expr, sympy.log):
        yield f"log({expr.args[0]})", expr.args[0]
    elif isinstance(expr, log1p):
        yield f"log({1 + expr.args[0]})", 1 + expr.args[0]
    elif isinstance(expr, xlogy):
        yield f"log({expr.args[1]})", expr.args[1]
    elif isinstance(expr, xlog1py):
        yield f"log({1 + expr.args[1]})", 1 + expr.args[1]
    elif isinstance(expr, xdivy):
        yield f"1/({expr.args[1]})", expr.args[1]
    elif isinstance(expr, sympy.Pow) and expr.exp.is_number and expr.exp.is_negative:
        yield f"1/({expr.base})" if expr.exp == -1 else str(expr), expr.base
    for arg in expr.args:
        yield from _singular_arguments(arg)


def _zero_on_unit_box(argument: sympy.Expr, inputs: frozenset) -> str | None:
    """A point of ``[0, 1]^inputs`` where the polynomial ``argument`` is 0 (or crosses 0)."""
    free = sorted(argument.free_symbols, key=str)
    if not free or not set(free) <= inputs or not argument.is_polynomial(*free):
        return None
    grid = list(itertools.product((0, sympy.Rational(1, 2), 1), repeat=len(free)))
    values = [argument.xreplace(dict(zip(free, point))) for point in grid]
    for point, value in zip(grid, values):
        if value == 0:
            return ", ".join(f"{s} = {v}" for s, v in zip(free, point))
    if min(values) < 0 < max(values):
        return "a point between " + " and ".join(
            ", ".join(f"{s} = {v}" for s, v in zip(free, grid[i]))
            for i in (values.index(min(values)), values.index(max(values))))
    return None


__all__ = ["RULES", "Rule", "Stabilized", "stabilize", "rewrite_with_rules", "infinity_warnings"]
