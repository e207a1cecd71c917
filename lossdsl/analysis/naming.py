"""Names in printed formulas: the user's bindings, counts, long reductions, common parts.

:func:`name_formulas` turns formulas over a :class:`ReductionTable` into a
:class:`NamedFormulas`: bindings (name -> value, in dependency order) and the
formulas over those names. The user's own bindings come first and keep their
names (``p = clip(y_pred, 1e-7, 1 - 1e-7)``); a count is bound to ``sum(1)``
(``n``); a reduction too long to read inline gets a binding of its own
(``sum_1``); a part repeated in the formulas gets a readable name
(``sigmoid_y_pred``). Every step replaces a part by a name bound to that very
part, so the named program computes what the formulas compute.

    >>> from lossdsl.analysis.analyze import analyze
    >>> a = analyze("p = clip(y_pred, 1e-7, 1 - 1e-7); mean(-y_true*log(p))")
    >>> print(name_formulas([a.expression], a.table, user_bindings(a)).text())
    p = clip(y_pred, 1e-7, 0.9999999); -mean(xlogy(y_true, p))
    >>> a = analyze("mu = mean(y_pred); mean((y_pred - mu)^2)")
    >>> print(name_formulas([a.gradient], a.table, user_bindings(a)).text())
    mu = mean(y_pred); n = sum(1); 2 * (y_pred - mu) / n
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import sympy

from lossdsl.analysis.dsl_text import column_of, formula_text, to_ir
from lossdsl.language import ir
from lossdsl.limits import COMPILE_CACHE_SIZE
from lossdsl.ops import REGISTRY
from lossdsl.symbolic.counts import Count
from lossdsl.symbolic.stability import stabilize
from lossdsl.symbolic.translate import ReductionTable, Reduction, _Lowerer

UserBindings = tuple[tuple[str, tuple[sympy.Expr, ...]], ...]
INLINE_REDUCTION_CHARS = 48
"""A reduction longer than this is bound to a name when it is used twice or inside another."""
LONG_REDUCTION_CHARS = 100
"""A reduction longer than this is always bound to a name."""
MIN_SHARED_CHARS = 12
"""A repeated part shorter than this stays inline (``1 - y_true`` reads fine twice)."""


@dataclass(frozen=True)
class NamedFormulas:
    """Formulas over names: ``bindings`` (symbol, value) in order, then ``formulas``."""

    bindings: tuple[tuple[sympy.Symbol, sympy.Expr], ...]
    formulas: tuple[sympy.Expr, ...]
    table: ReductionTable

    def binding_texts(self) -> list[tuple[str, str]]:
        """``(name, DSL text of the value)`` for each binding."""
        return [(symbol.name, formula_text(value, self.table)) for symbol, value in self.bindings]

    def body_text(self, index: int = 0) -> str:
        """Formula ``index`` over the bound names."""
        return formula_text(self.formulas[index], self.table)

    def text(self, index: int = 0) -> str:
        """Formula ``index`` as one DSL program: ``name = value; ...; formula``."""
        return "; ".join([f"{name} = {value}" for name, value in self.binding_texts()]
                         + [self.body_text(index)])


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _user_bindings(source: str, inputs: tuple[str, ...],
                   vectors: tuple[str, ...]) -> UserBindings:
    lowerer = _Lowerer(ir.parse_source(source), source, inputs, vectors)
    lowerer.run()
    found = []
    for name, value in lowerer.locals.items():
        if value.is_number:
            continue  # replacing a number would name unrelated constants
        stable = stabilize(lowerer.table, [value]).exprs[0]
        found.append((name, tuple(dict.fromkeys((value, stable)))))
    return tuple(found)


def user_bindings(analysis) -> UserBindings:
    """The source's local bindings: each name with the SymPy forms its value takes."""
    return _user_bindings(analysis.source, tuple(analysis.inputs), tuple(analysis.vectors))


def name_formulas(formulas: Sequence[sympy.Expr], table: ReductionTable,
                  user: UserBindings = (), *, name_counts: bool = True,
                  shared: bool = True) -> NamedFormulas:
    """Bind the user's names, counts, long reductions and repeated parts (module docstring)."""
    return _Namer(table, [sympy.sympify(f) for f in formulas], user).run(name_counts, shared)


class _Namer:
    def __init__(self, table: ReductionTable, formulas: list[sympy.Expr],
                 user: UserBindings) -> None:
        self.table, self.formulas, self.user = table, formulas, user
        self.bindings: list[tuple[sympy.Symbol, sympy.Expr]] = []
        symbols = {s for f in formulas for s in f.free_symbols} | {
            s for r in table.in_order() for s in r.arg.free_symbols}
        self.taken = set(REGISTRY) | {n for n, _ in user} | {
            s.name for s in symbols if not isinstance(s, Count) and s not in table}

    def run(self, name_counts: bool, shared: bool) -> NamedFormulas:
        self._user_names()
        self._long_reductions()
        if shared:
            self._shared_parts()
        if name_counts:
            self._counts()
        return NamedFormulas(tuple(self._ordered()), tuple(self.formulas), self.table)

    def _replace(self, mapping: dict, keep: Callable[[sympy.Expr], bool] | None = None) -> None:
        self.formulas = [f.xreplace(mapping) for f in self.formulas]
        self.table = self.table.substituted(mapping, keep)
        self.bindings = [(s, v.xreplace(mapping)) for s, v in self.bindings]

    def _bind(self, name: str, value: sympy.Expr, replace: bool = True) -> sympy.Symbol:
        symbol = sympy.Symbol(self._fresh(name), real=True)
        mapping = {value: symbol, -value: -symbol}
        if replace:
            self._replace(mapping)
        self.bindings.append((symbol, value))
        return symbol

    def _fresh(self, name: str) -> str:
        """``name``, or ``name_1``, ``name_2`` ... when it is taken (or ends with ``_``)."""
        base, k = name.rstrip("_"), 0
        candidate = name if not name.endswith("_") else f"{base}_1"
        while candidate in self.taken:
            k += 1
            candidate = f"{base}_{k}"
        self.taken.add(candidate)
        return candidate

    def _user_names(self) -> None:
        mappings = []
        for name, values in self.user:
            symbol = sympy.Symbol(name, real=True)
            mapping = {value: symbol for value in values}
            mapping.update({-value: -symbol for value in values})  # a - p, y - x
            mappings.append((symbol, values[0], mapping))
        # Latest first: a later binding's value contains the earlier ones' values.
        for index in reversed(range(len(mappings))):
            self._replace(mappings[index][2])
        for index, (symbol, value, _) in enumerate(mappings):
            for _, _, earlier in reversed(mappings[:index]):
                value = value.xreplace(earlier)
            self.bindings.append((symbol, value))

    def _long_reductions(self) -> None:
        for reduction in self.table.in_order():
            symbol = reduction.symbol
            if not self._used(symbol):
                continue
            uses = sum(f.count(symbol) for f in self._everything())
            nested = any(f.has(symbol) for f in self._everything() if f not in self.formulas)
            length = len(formula_text(symbol, self.table))
            if symbol in self.formulas and uses == 1:
                continue  # the formula is this one reduction: nothing to name
            if length > LONG_REDUCTION_CHARS or (
                    length > INLINE_REDUCTION_CHARS and (uses > 1 or nested)):
                self._bind("column_" if column_of(reduction) else f"{reduction.kind}_", symbol)

    def _used(self, symbol: sympy.Symbol) -> bool:
        return any(f.has(symbol) for f in self._everything())

    def _everything(self) -> Iterable[sympy.Expr]:
        yield from self.formulas
        yield from (v for _, v in self.bindings)
        yield from (r.arg for r in self.table.in_order())

    def _shared_parts(self) -> None:
        targets = list(self.formulas)
        names = sympy.numbered_symbols("_t", real=True)
        replacements, reduced = sympy.cse(targets, symbols=names, order="none")
        inline: dict[sympy.Symbol, sympy.Expr] = {}
        kept: list[tuple[sympy.Symbol, sympy.Expr]] = []
        for symbol, value in replacements:
            value = value.xreplace(inline)
            # A condition (Eq(y_true, 2)) is no value a binding can hold: it stays inline.
            if not isinstance(value, sympy.Expr) or \
                    len(formula_text(value, self.table)) < MIN_SHARED_CHARS:
                inline[symbol] = value
            else:
                kept.append((symbol, value))
        rename = {}
        for symbol, value in kept:
            named = sympy.Symbol(self._fresh(_readable(value.xreplace(rename))), real=True)
            rename[symbol] = named
            self.bindings.append((named, value.xreplace(rename)))
        self.formulas = [f.xreplace(inline).xreplace(rename) for f in reduced]

    def _counts(self) -> None:
        # A count used only in the spelling of a last column x[..., -1] is not named.
        columns = {r.symbol: column_of(r) for r in self.table.in_order()}
        parts = list(self.formulas) + [v for _, v in self.bindings] + [
            columns[r.symbol][0] if columns[r.symbol] else r.arg for r in self.table.in_order()]
        counts = sorted({s for f in parts for s in f.free_symbols
                         if isinstance(s, Count) and s.axis != "output"}, key=str)
        for count in counts:
            symbol = sympy.Symbol(self._fresh("n" if len(counts) == 1 else _count_name(count)),
                                  real=True)
            # The last column x[..., -1] is sum(x * one_hot(n[-1] - 1), axis=-1): in a
            # reduction, a one_hot keeps its count, the column's spelling.
            self._replace({count: symbol}, keep=_is_one_hot)
            self.bindings.append((symbol, count))

    def _ordered(self) -> list[tuple[sympy.Symbol, sympy.Expr]]:
        """The used bindings, each after those it uses, otherwise in creation order."""
        values = dict(self.bindings)
        order: list[sympy.Symbol] = []

        def visit(symbol: sympy.Symbol) -> None:
            if symbol in order:
                return
            for dependency in self._dependencies(values[symbol], values):
                visit(dependency)
            order.append(symbol)

        for formula in self.formulas:
            for dependency in self._dependencies(formula, values):
                visit(dependency)
        rank = {symbol: index for index, (symbol, _) in enumerate(self.bindings)}
        placed: list[sympy.Symbol] = []
        for symbol in sorted(order, key=rank.get):  # creation order, dependencies first
            self._place(symbol, values, placed)
        return [(symbol, values[symbol]) for symbol in placed]

    def _place(self, symbol, values, placed) -> None:
        if symbol in placed:
            return
        for dependency in self._dependencies(values[symbol], values):
            self._place(dependency, values, placed)
        placed.append(symbol)

    def _dependencies(self, expr: sympy.Expr, values: dict) -> list[sympy.Symbol]:
        found, pending, seen = [], [expr], set()
        while pending:
            for symbol in sorted(pending.pop().free_symbols, key=str):
                if symbol in seen:
                    continue
                seen.add(symbol)
                if symbol in values:
                    found.append(symbol)
                elif symbol in self.table:
                    pending.append(self.table[symbol].arg)
        return found


def _is_one_hot(factor: sympy.Expr) -> bool:
    return isinstance(factor, REGISTRY["one_hot"].sympy)


def _count_name(count: Count) -> str:
    if count.axis is None:
        return "n"
    if count.axis == (-1,):
        return "n_last"
    return "n_axis" + "_".join(str(a).replace("-", "m") for a in count.axis)


def _readable(value: sympy.Expr) -> str:
    """A name for a repeated part: ``sigmoid_y_pred`` for a call on a name, else ``t``."""
    node = to_ir(value, ReductionTable())
    if isinstance(node, ir.Call) and len(node.args) == 1:
        arg = node.args[0]
        sign, arg = ("minus_", arg.operand) if isinstance(arg, ir.Negate) else ("", arg)
        if isinstance(arg, ir.Name):
            name = f"{node.function}_{sign}{arg.id}"
            return name if len(name) <= 20 else node.function + "_"
    if isinstance(node, ir.Call) and node.function == "where" and \
            [ir.to_text(a) for a in node.args[1:]] == ["1", "0"]:
        return "step_"
    if isinstance(node, ir.Call):
        return node.function + "_"
    return "t"


__all__ = ["NamedFormulas", "Reduction", "name_formulas", "user_bindings"]
