"""What a compiled Keras object shows of its source: parameters and formulas.

:class:`CompiledFormulas` is mixed into the loss, metric and penalty classes;
:class:`ReadOnlyParams` is how they hand out their parameter values; formulas
are :class:`~lossdsl.analysis.formula.Formula` values (lossdsl source when
printed, SymPy underneath), and the report renders as Markdown in notebooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lossdsl.analysis.explain import explain_analysis
from lossdsl.analysis.formula import Formula

if TYPE_CHECKING:
    from lossdsl.analysis.results import CompiledExpression

__all__ = ["CompiledFormulas", "Formula", "ReadOnlyParams"]


class ReadOnlyParams(dict):
    """The parameter values of a compiled object: a dict that refuses changes.

    The values are built into the compiled TensorFlow plan, so changing one here
    could not change what the object computes; every mutation raises a
    ``TypeError`` that says so. To use other values, compile again
    (``lossdsl.compile(loss.source, beta=5.0)``), or ``from_config`` with new
    ``params``; ``dict(params)`` or ``params.copy()`` gives a plain, mutable copy.

    >>> params = ReadOnlyParams({"beta": 1.0})
    >>> params["beta"] = 5.0  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: Parameter values are read-only: they are built into the compiled loss. ...
    """

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "Parameter values are read-only: they are built into the compiled loss. "
            "Compile again with the new value, e.g. lossdsl.compile(loss.source, beta=5.0), "
            "or use type(loss).from_config({**loss.get_config(), 'params': {...}}).")

    __setitem__ = __delitem__ = __ior__ = _refuse
    update = pop = popitem = clear = setdefault = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        # copy/pickle rebuild a dict subclass item by item, through __setitem__.
        return (type(self), (dict(self),))


class CompiledFormulas:
    """Read access to the formulas of a Keras object compiled from a source.

    Mixed into the loss, metric and penalty classes, which keep their
    :class:`CompiledExpression` in ``self.compiled``. Formulas are
    :class:`Formula` values: lossdsl source when printed, SymPy underneath.
    """

    compiled: CompiledExpression

    source = property(lambda self: self.compiled.source, doc="The source text.")
    params = property(
        lambda self: ReadOnlyParams(self.compiled.params),
        doc="Parameter values, read-only (:class:`ReadOnlyParams`): they are built into the "
            "compiled plan. To change one, compile again with the new value, or call "
            "``from_config`` with new ``params``.")

    @property
    def expression(self) -> Formula:
        """The per-sample formula that runs (stable, simplified), parameters as names."""
        return Formula(self.compiled.expression, self.compiled.analysis)

    @property
    def gradient(self) -> Formula:
        """d formula / d its differentiated input, elementwise, simplified."""
        return Formula(self.compiled.gradient, self.compiled.analysis)

    @property
    def parameter_gradients(self) -> dict[str, Formula]:
        """d formula / d parameter, per sample."""
        return {name: Formula(formula, self.compiled.analysis)
                for name, formula in self.compiled.parameter_gradients.items()}

    def _repr_markdown_(self) -> str:
        """The report of :func:`lossdsl.explain` as Markdown, for notebooks."""
        return explain_analysis(self.compiled.analysis, self.compiled.params).to_markdown()

    def _call_text(self, constructor: str) -> str:
        """``constructor('source', name=value, ...)``: how the object is made, for ``repr``."""
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{constructor}({self.source!r}{params})"
