"""Vector parameters: one value per element of the last axis (``w=[1.0, 2.0, 5.0]``).

A vector parameter is a SymPy symbol of its own class, so that the symbolic core
knows that its value depends on the element's position along the last axis, as
``one_hot(k)``'s does (:func:`lossdsl.ops.varies_by_position`): a reduction keeps
it inside (``sum(w*y)`` is not ``w*sum(y)``). Before the values are known it is
:class:`PerClass` ``w``; the plans build in :class:`PerClassValues`, which carries
the values and lowers to a constant of shape ``(classes,)``.

    >>> w = PerClassValues("w", (1.0, 2.0, 5.0))
    >>> w.values, w.is_real
    ((1.0, 2.0, 5.0), True)
"""

from __future__ import annotations

import sympy


class PerClass(sympy.Symbol):
    """A vector parameter in the formulas: one real value per element of the last axis."""

    def __new__(cls, name: str) -> "PerClass":
        return sympy.Symbol.__xnew__(cls, name, real=True)

    def __getnewargs_ex__(self) -> tuple[tuple, dict]:
        return (self.name,), {}

    def __reduce_ex__(self, protocol: int):
        return type(self), (self.name,)


class PerClassValues(sympy.Symbol):
    """A vector parameter's values, built into a plan (its name shows them, so two
    different vectors are never one symbol)."""

    values: tuple[float, ...]
    parameter: str

    def __new__(cls, parameter: str, values: tuple[float, ...]) -> "PerClassValues":
        values = tuple(float(v) for v in values)
        symbol = sympy.Symbol.__xnew__(cls, f"{parameter}{list(values)}", real=True)
        symbol.values, symbol.parameter = values, parameter
        return symbol

    def __getnewargs_ex__(self) -> tuple[tuple, dict]:
        return (self.parameter, self.values), {}

    def __reduce_ex__(self, protocol: int):
        return type(self), (self.parameter, self.values)


__all__ = ["PerClass", "PerClassValues"]
