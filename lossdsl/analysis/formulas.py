"""What a compiled Keras object shows of its source: parameters and formulas.

:class:`CompiledFormulas` is mixed into the loss, metric and penalty classes;
:class:`ReadOnlyParams` is how they hand out their parameter values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lossdsl.analysis.analyze import CompiledExpression


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
    :class:`CompiledExpression` in ``self.compiled``.
    """

    compiled: CompiledExpression

    source = property(lambda self: self.compiled.source, doc="The source text.")
    params = property(
        lambda self: ReadOnlyParams(self.compiled.params),
        doc="Parameter values, read-only (:class:`ReadOnlyParams`): they are built into the "
            "compiled plan. To change one, compile again with the new value, or call "
            "``from_config`` with new ``params``.")
    expression = property(lambda self: self.compiled.expression,
                          doc="The simplified per-sample formula, parameters as symbols.")
    gradient = property(lambda self: self.compiled.gradient,
                        doc="d formula / d its differentiated input, elementwise, simplified.")
    parameter_gradients = property(lambda self: dict(self.compiled.parameter_gradients),
                                   doc="d formula / d parameter, per sample.")

    def _call_text(self, constructor: str) -> str:
        """``constructor('source', name=value, ...)``: how the object is made, for ``repr``."""
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{constructor}({self.source!r}{params})"
