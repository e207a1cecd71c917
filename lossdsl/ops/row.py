"""One row of the function table: :class:`Op`, with its :class:`Domain` and :class:`Kink` columns.

Every fact about a function lives in its row; the tables other stages need
(domain conditions, kinks, infinity warnings, NumPy forms, derivatives) are read
from these columns, keyed by the row, never by the name of a SymPy class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import sympy

Kind = Literal["elementwise", "reduction", "normalizer", "pairwise"]

# A derivative rule takes the SymPy arguments of a call and returns d f / d arg_i.
DerivativeRule = Callable[..., sympy.Expr]


@dataclass(frozen=True)
class Domain:
    """Where a function has a finite value.

    Attributes:
        requires: the call's arguments -> what must hold for a finite value
            (``log(x)``: ``x > 0``).
        pole: the call's arguments -> the expression that is 0 where the value is
            infinite (``log1p(x)``: ``1 + x``); the infinity warning looks for its zeros.
        reason: why, as a ``str.format`` template over ``{call}`` and ``{0}``,
            ``{1}``...: the texts of the call and of its arguments.
        shown: how the infinity warning shows the infinite part, a template over the pole.
    """

    requires: Callable[..., sympy.Basic]
    pole: Callable[..., sympy.Expr]
    reason: str
    shown: str = "log({})"


@dataclass(frozen=True)
class Kink:
    """A place where a function is not differentiable, and what TF's gradient does there.

    Attributes:
        at: the call's arguments -> ``(a, b)``: the kink is where ``a == b``.
        reason: a template over ``{call}`` and ``{0}``, ``{1}``... (as :class:`Domain`'s).
    """

    at: Callable[..., tuple[sympy.Expr, sympy.Expr]]
    reason: str


@dataclass(frozen=True)
class Op:
    """One function of the language.

    Attributes:
        name: the DSL spelling.
        arity: the number of positional arguments.
        kind: ``elementwise``; ``reduction`` (reduces axes, takes ``axis=``);
            ``normalizer`` (``softmax``-like: same shape, takes ``axis=``);
            ``pairwise`` (an input's samples against each other: one row over the batch
            per sample, see :class:`lossdsl.symbolic.reductions.Pair`).
        sympy: builds the SymPy form from SymPy arguments; for reductions this is
            None, because reductions are lifted to symbols (see ``symbolic``).
        tf: dotted path of the TensorFlow function, under ``tensorflow``; None
            when no TF function runs it (``softmax`` lowers to ``exp`` and ``logsumexp``).
        keras: its ``keras.ops`` function, by name (``"absolute"``), or an absolute
            ``lossdsl.`` path to one lossdsl defines on ``keras.ops`` (``xlogy``, which
            ``keras.ops`` lacks); ``""`` means the ``keras.ops`` function of the row's own
            name (``log1p``). Run by :mod:`lossdsl.backends.keras_ops` on JAX and PyTorch.
        latex: ``str.format`` template over the LaTeX of the arguments, for the
            heads lossdsl prints itself (its own functions, reductions); empty
            where SymPy prints the head (``log``, ``abs``) or none survives
            lowering (``sqrt`` is a power, ``where`` a Piecewise, ``softmax``).
        doc: one line for ``lossdsl ops`` and the README.
        derivatives: d f / d arg_i, for the functions lossdsl defines itself and
            for ``abs``/``sign`` (their real derivative, as TF's). For a reduction,
            one rule ``(element, value, count, total)``: d value / d one element,
            given the reduced value, the number of elements reduced, and a function
            summing an expression over the same axes.
        default_axis: for ``normalizer`` and ``pairwise`` ops, the axis when none is given.
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
        domain: where the value is finite (``log``: a positive argument); None
            when it is finite everywhere.
        kinks: where it is not differentiable (``abs`` at 0, ``clip`` at its bounds).
        numpy: its NumPy form, as a dotted path under ``numpy`` or an absolute
            ``lossdsl.`` one, resolved by :func:`lossdsl.ops.numpy_forms.numpy_form`
            (NumPy is imported only then). A reduction or normalizer's form takes
            ``(x, axis)`` and keeps the reduced axes.
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
    domain: Domain | None = field(default=None, repr=False)
    kinks: tuple[Kink, ...] = field(default=(), repr=False)
    numpy: str = ""
    keras: str = ""

    def __post_init__(self) -> None:
        assert len(self.arguments) == self.arity, f"{self.name}: one name per argument"
        assert self.numpy, f"{self.name}: give the row its NumPy form"

    @property
    def keras_path(self) -> str | None:
        """The ``keras`` column with its default filled in; None when no function runs the row."""
        if self.tf is None:
            return None
        return self.keras or self.name

    @property
    def signature(self) -> str:
        """How a call reads, e.g. ``clip(x, lo, hi)``."""
        return f"{self.name}({', '.join(self.arguments)})"
