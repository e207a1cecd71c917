"""SymPy classes for the DSL functions SymPy lacks (``sigmoid``, ``softplus``, ``xlogy`` ...).

Their derivative, value on numbers and LaTeX come from their row of
:data:`lossdsl.ops.OPS`, which the table attaches to each class (``row``).
"""

from __future__ import annotations

import sympy
from mpmath.libmp import prec_to_dps

from lossdsl.ops.latex_template import format_template


class DSLFunction(sympy.Function):
    """A SymPy function whose derivative and LaTeX come from its :data:`OPS` row.

    ``row`` (the class's :class:`~lossdsl.ops.Op`) and ``by_position_heads`` (the
    classes whose value depends on position) are set by :mod:`lossdsl.ops.table`
    once the table is built.
    """

    is_real = True
    row = None
    by_position_heads: tuple[type, ...] = ()

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return self.row.derivatives[argindex - 1](*self.args)

    def _eval_evalf(self, prec: int) -> sympy.Expr | None:
        # A call on numbers has a value: without one, SymPy cannot decide a comparison
        # of constants (where(3 >= expm1(2), ...) recursed without end) nor tell that
        # log1p(-2) is not real.
        # one_hot(2) has no free symbols but is no number: its value depends on position.
        if self.row.elementary is None or not all(arg.is_number for arg in self.args) \
                or self.has(*self.by_position_heads):
            return None
        try:
            return self.row.elementary(*self.args).evalf(prec_to_dps(prec))
        except ZeroDivisionError:  # mpmath's float division by 0.0: no finite value
            return sympy.zoo

    def _latex(self, printer: sympy.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        tex = format_template(self.row.latex, printer, self.args)
        # SymPy passes `exp` when this call is the base of a power.
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"


class RealStandIn(sympy.Function):
    """Stands in for a SymPy head of real arguments while differentiating (``abs``, ``sign``).

    SymPy differentiates ``Abs``/``sign`` of an argument it cannot prove real
    into re/im/atan2 or an unevaluated Derivative; a subclass made by
    :func:`real_stand_in` differentiates by its row's ``derivatives`` instead.
    """

    is_real = True
    row = None  # the Op, set by real_stand_in

    def fdiff(self, argindex: int = 1) -> sympy.Expr:
        return self.row.derivatives[argindex - 1](*self.args)


def real_stand_in(row) -> type[RealStandIn]:
    """A :class:`RealStandIn` class for the row's SymPy head."""
    return type(f"Real{row.sympy.__name__}", (RealStandIn,), {"row": row, "nargs": row.arity})


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
lgamma = _own("lgamma", 1)
# Value x, derivative 0: a SymPy function of its own (not x itself), so that no
# simplification sees through it and the derivative rule in its row applies.
stop_gradient = _own("stop_gradient", 1)


def step(x: sympy.Expr, at_zero: int) -> sympy.Expr:
    """Heaviside step with an explicit value at 0, matching TF's gradient at kinks."""
    return sympy.Heaviside(x, at_zero)
