"""Reduction symbols: each reduction of a loss stands as one SymPy symbol, in a table.

A reduction symbol stands for one reduction (``mean(y_pred)``); its name is its
own text, so a formula that contains it reads naturally. A count symbol (``n``
for "every axis of the sample", ``n[-1]`` for ``axis=-1``) is the number of
elements a reduction reduces. The :class:`ReductionTable` holds what each
reduction symbol means, in dependency order, and makes ``mean`` and ``sum``
linear: they distribute over sums and pull out factors constant along their axis.

    >>> import sympy
    >>> table = ReductionTable()
    >>> y = ELEMENTWISE_INPUTS["y_pred"]
    >>> table.reduce("mean", 3*y + 1, None)
    3*mean(y_pred) + 1
    >>> [(r.kind, r.arg, r.axis) for r in table.in_order()]
    [('mean', y_pred, None)]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import sympy

from lossdsl import limits
from lossdsl.ops import INPUT_NAMES, varies_by_position
from lossdsl.symbolic.counts import Axis, Count, reduces_batch, sample_part
from lossdsl.symbolic.pairs import Pair


ELEMENTWISE_INPUTS: dict[str, sympy.Symbol] = {
    name: sympy.Symbol(name, real=True) for name in INPUT_NAMES}
LINEAR_REDUCTIONS = ("mean", "sum")
"""The reductions that distribute over sums (``mean(a + b)`` is ``mean(a) + mean(b)``)."""


def count_symbol(axis: Axis) -> Count:
    """The number of elements a reduction over ``axis`` reduces: ``n``, ``n[-1]``, ..."""
    return Count(axis)


def axis_text(axis: Axis) -> str:
    """``, axis=K`` as a reduction symbol's name spells its axis (nothing for every axis)."""
    if axis is None:
        return ""
    return f", axis={axis[0]}" if len(axis) == 1 else f", axis={axis}"


@dataclass(frozen=True)
class Reduction:
    """What a reduction symbol stands for: ``kind(arg, axis=axis)``."""

    kind: str
    arg: sympy.Expr
    axis: Axis
    symbol: sympy.Symbol


@dataclass
class ReductionTable:
    """Every reduction of a loss (and of its gradient), in dependency order; and its pairs.

    A pair symbol (``pair_dist(y_pred)``) counts as an input: it varies along every axis
    of the (batch, batch) rows it stands for. ``pairs`` says what each one is.
    """

    inputs: frozenset[sympy.Symbol] = frozenset(ELEMENTWISE_INPUTS.values())
    reductions: dict[sympy.Symbol, Reduction] = field(default_factory=dict)
    _by_key: dict[tuple, sympy.Symbol] = field(default_factory=dict, repr=False)
    pairs: dict[sympy.Symbol, Pair] = field(default_factory=dict)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.reductions

    def __getitem__(self, symbol: sympy.Symbol) -> Reduction:
        return self.reductions[symbol]

    def in_order(self) -> list[Reduction]:
        return list(self.reductions.values())

    def with_inputs(self, extra: frozenset[sympy.Symbol]) -> "ReductionTable":
        """A copy that also counts ``extra`` as inputs (varying along every axis)."""
        table = ReductionTable(inputs=self.inputs | extra, pairs=dict(self.pairs))
        table.reductions, table._by_key = dict(self.reductions), dict(self._by_key)
        return table

    def substituted(self, values: dict[sympy.Symbol, sympy.Expr],
                    keep: Callable[[sympy.Expr], bool] | None = None) -> "ReductionTable":
        """The same reductions with ``values`` put into their arguments (symbols kept);
        factors of an argument for which ``keep`` is true are left as they are."""
        table = ReductionTable(inputs=self.inputs, pairs={
            symbol: pair if pair.upstream is None else
            replace(pair, upstream=pair.upstream.xreplace(values))
            for symbol, pair in self.pairs.items()})
        for symbol, reduction in self.reductions.items():
            arg = reduction.arg.xreplace(values) if keep is None else sympy.Mul(*(
                f if keep(f) else f.xreplace(values) for f in sympy.Mul.make_args(reduction.arg)))
            table.reductions[symbol] = Reduction(reduction.kind, arg, reduction.axis, symbol)
            table._by_key[(reduction.kind, arg, reduction.axis)] = symbol
        return table

    def pair(self, kind: str, input: sympy.Symbol | None, axis: int = -1) -> sympy.Symbol:
        """The symbol of ``kind(input)`` (a row of kind ``pairwise``), an input from now on."""
        text = Pair(kind, input, sympy.Symbol("_"), axis=axis).text
        symbol = sympy.Symbol(text, real=True)
        if symbol not in self.pairs:
            self.pairs[symbol] = Pair(kind, input, symbol, axis=axis)
            self.inputs = self.inputs | {symbol}
        return symbol

    def pair_backward(self, pair: Pair, upstream: sympy.Expr) -> sympy.Symbol:
        """The symbol of d (sum of ``upstream`` * ``pair``) / d its input, at the input's shape."""
        for symbol, known in self.pairs.items():
            if known.upstream is not None and (known.kind, known.input, known.axis,
                                               known.upstream) == (
                    pair.kind, pair.input, pair.axis, upstream):
                return symbol
        number = sum(known.upstream is not None for known in self.pairs.values())
        symbol = sympy.Symbol(f"backward{number}({pair.text})", real=True)
        self.pairs[symbol] = replace(pair, symbol=symbol, upstream=upstream)
        self.inputs = self.inputs | {symbol}
        return symbol

    @property
    def triples(self) -> bool:
        """Whether a pair function runs along ``axis=-2``: each sample's rows are then
        (batch, batch), over the triples (the sample, j, k) of the batch."""
        return any(pair.axis == -2 for pair in self.pairs.values())

    def reduce(self, kind: str, arg: sympy.Expr, axis: Axis) -> sympy.Expr:
        """The SymPy expression for ``kind(arg, axis)``, made linear for mean and sum."""
        if kind in LINEAR_REDUCTIONS:
            return self._linear(kind, sympy.sympify(arg), axis)
        if self.is_constant_along(arg, axis) and kind in ("max", "min"):
            return arg
        return self._symbol(kind, arg, axis)

    def opaque(self, kind: str, arg: sympy.Expr, axis: Axis) -> sympy.Symbol:
        """The symbol of ``kind(arg, axis)`` as one reduction, not distributed over ``arg``'s terms.

        For lowering only (one pass over the data); the symbolic core uses :meth:`reduce`.
        """
        return self._symbol(kind, sympy.sympify(arg), axis)

    def _linear(self, kind: str, arg: sympy.Expr, axis: Axis) -> sympy.Expr:
        # mean/sum distribute over + and pull out factors constant along `axis`;
        # that keeps gradients such as the variance's small (their sums cancel).
        terms = sympy.Add.make_args(arg)
        if len(terms) > 1:
            return sympy.Add(*(self._linear(kind, term, axis) for term in terms))
        constant, varying = [], []
        for factor in sympy.Mul.make_args(arg):
            (constant if self.is_constant_along(factor, axis) else varying).append(factor)
        scale = sympy.Mul(*constant)
        if not varying:
            return scale * (count_symbol(axis) if kind == "sum" else 1)
        rest = sympy.Mul(*varying)
        if constant and isinstance(rest, sympy.Add):
            return scale * self._linear(kind, rest, axis)
        return scale * self._mean_or_sum(kind, rest, axis)

    def _mean_or_sum(self, kind: str, arg: sympy.Expr, axis: Axis) -> sympy.Expr:
        # sum(x) and n*mean(x) are one reduction: reuse whichever exists already.
        other = "mean" if kind == "sum" else "sum"
        existing = self._by_key.get((other, arg, axis))
        if existing is not None:
            n = count_symbol(axis)
            return existing * n if kind == "sum" else existing / n
        return self._symbol(kind, arg, axis)

    def _symbol(self, kind: str, arg: sympy.Expr, axis: Axis) -> sympy.Symbol:
        key = (kind, arg, axis)
        if key not in self._by_key:
            symbol = sympy.Symbol(self._name(kind, arg, axis), real=True)
            self._by_key[key] = symbol
            self.reductions[symbol] = Reduction(kind, arg, axis, symbol)
        return self._by_key[key]

    def _name(self, kind: str, arg: sympy.Expr, axis: Axis) -> str:
        """The reduction's own text, or a numbered stand-in when that text would be long.

        Names embed the names of inner reductions, so spelling every one out
        grows exponentially with nesting; ``…`` cannot occur in a source, so a
        numbered name never collides with a spelled-out one.
        """
        text = None if limits.exceeds(arg, limits.MAX_REDUCTION_NAME) else sympy.sstr(arg)
        if text is None or len(text) > limits.MAX_REDUCTION_NAME:
            text = f"…{len(self.reductions)}"
        return f"{kind}({text}{axis_text(axis)})"

    def is_constant_along(self, expr: sympy.Expr, axis: Axis) -> bool:
        """Whether ``expr`` provably takes one value along every axis in ``axis``."""
        if varies_by_position(expr):
            return False
        for symbol in sympy.sympify(expr).free_symbols:
            if symbol in self.pairs and self.pairs[symbol].upstream is None:
                if axis != self.pairs[symbol].constant_axis:  # a triple's (a, p) or (a, n)
                    return False
            elif symbol in self.inputs:
                return False
            if symbol in self.reductions and not _covers(self.reductions[symbol].axis, axis):
                return False
        return True

    def constant_specs(self, expr: sympy.Expr) -> set:
        """The axis specs of the reductions ``expr`` is made of, as sample axes each is
        constant along: ``{()}`` when ``expr`` varies along every axis (it involves an input
        directly, or a statistic of the batch alone), empty when it involves no input.

        The batch axis is left out: the per-sample output always keeps it.
        """
        free = sympy.sympify(expr).free_symbols
        pairs = {s for s in free if s in self.pairs and self.pairs[s].upstream is None}
        # Over triples an input read directly is one number per sample: constant along both
        # (a backward pass, at its input's shape, is never part of a loss).
        direct = {s for s in (free - pairs) & self.inputs if s not in self.pairs}
        if (free - pairs - direct) & self.inputs or varies_by_position(expr) or (
                (pairs or direct) and not self.triples):
            return {()}
        specs: set = {self.pairs[symbol].constant_axis for symbol in pairs}
        specs |= {(-2, -1)} if direct else set()
        for symbol in free:
            if symbol in self.reductions:
                specs |= _effective_specs(self, self.reductions[symbol])
        return specs

    def constant_axis(self, expr: sympy.Expr) -> Axis | str:
        """The axes along which ``expr`` is provably constant, as an axis spec.

        Returns ``()`` when ``expr`` involves an input directly, ``None`` (all axes)
        when it involves no input, and ``"mixed"`` when it combines reductions over
        different axes (the count is then only known from the shapes, at run time).
        """
        specs = self.constant_specs(expr)
        if () in specs:
            return ()
        specs.discard(None)
        if not specs:
            return None
        return specs.pop() if len(specs) == 1 else "mixed"


def _effective_specs(table: ReductionTable, reduction: Reduction) -> set:
    """The sample axes a reduction's value is constant along (see :meth:`constant_specs`).

    One over the batch axis is constant along its sample axes, or along its argument's
    when it reduces the batch alone (``mean(sum(y), axis=0)``: every sample axis), and
    along every sample axis when its argument is.
    """
    if not reduces_batch(reduction.axis):
        return {_with_constant_axes(reduction.axis, table.constant_specs(reduction.arg))}
    part, inner = sample_part(reduction.axis), table.constant_specs(reduction.arg)
    if inner <= {None}:
        return {None}
    return inner if part == () else {_with_constant_axes(part, inner)}


def _with_constant_axes(axis: Axis, inner: set) -> Axis:
    """A reduction's axes and those its argument is constant along, when both count from
    the end: over a triple's rows, ``sum(f(p), axis=-2)`` is constant along -1 as well."""
    if axis is None or not inner or None in inner or () in inner or any(
            a >= 0 for spec in inner | {axis} for a in spec):
        return axis
    shared = set.intersection(*(set(spec) for spec in inner)) | set(axis)
    return tuple(sorted(shared))


def _covers(outer: Axis, inner: Axis) -> bool:
    """Whether reducing over ``outer`` reduces every axis that ``inner`` names.

    ``None`` (every axis of a sample) does not cover the batch axis: ``mean(y_pred)``
    varies from sample to sample, so it is not constant along ``axis=0``.
    """
    if outer is None:
        return not reduces_batch(inner)
    return outer == inner
