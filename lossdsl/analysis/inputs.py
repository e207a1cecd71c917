"""Extra named inputs (``inputs=["mask"]``): the names a loss is given, checked.

A name declared as an input is an elementwise input like ``y_true`` (from the
dict ``y_true`` becomes, see :mod:`lossdsl.backends.labels`), not a parameter.

    >>> declared_inputs("mask", None)
    ('mask',)
    >>> declared_inputs(["mask", "weights"], {"alpha": 0.5})
    ('mask', 'weights')
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from lossdsl.errors import DSLNameError
from lossdsl.language.nodes import Program, names_in
from lossdsl.ops import CONSTANTS, INPUT_NAMES, REGISTRY

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = {*INPUT_NAMES, *CONSTANTS, "and", "or", "not"}


def declared_inputs(inputs: str | Iterable[str] | None, params: Mapping[str, Any] | None
                    ) -> tuple[str, ...]:
    """The extra input names given to ``compile``/``metric``, checked (a string is one name).

    Raises:
        DSLNameError: a name that is not an identifier of the language, is ``y_true``,
            ``y_pred``, a function or a constant, is given twice, or is also a parameter.
    """
    hint = "extra inputs are names such as 'mask' or 'weights', e.g. inputs=['mask']"
    if inputs is None:
        return ()
    if not isinstance(inputs, (str, list, tuple)):
        raise DSLNameError(f"`inputs` must be a name or a list of names. Received: {inputs!r}.",
                           hint=hint)
    names = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise DSLNameError(f"An extra input must be a name of the language: {name!r}.",
                               hint=hint)
        if name in _RESERVED or name in REGISTRY or name.startswith("__"):
            raise DSLNameError(f"`{name}` cannot be an extra input: it is "
                               f"{'an input already' if name in INPUT_NAMES else 'reserved'}.",
                               hint=hint)
        if name in (params or {}):
            raise DSLNameError(f"`{name}` is declared an input and also given as a parameter.",
                               hint="an input takes a value per element from y_true's dict; "
                                    "a parameter one number: drop one of the two")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DSLNameError(f"Extra inputs declared twice: {', '.join(repeated)}.", hint=hint)
    return names


def check_inputs_used(program: Program, names: Sequence[str], source: str) -> None:
    """Every declared input is read by the source, and none is bound by it.

    Raises:
        DSLNameError: an input that the source never reads (a typo, or data fed for
            nothing), or that a binding ``name = ...`` redefines.
    """
    for binding in program.bindings:
        if binding.name in names:
            raise DSLNameError(f"`{binding.name}` is an input and cannot be rebound.",
                               source=source, hint="give the binding another name")
    read = {name.id for expr in (*(b.value for b in program.bindings), program.body)
            for name in names_in(expr)}
    unused = [name for name in names if name not in read]
    if unused:
        raise DSLNameError(f"Declared inputs that the loss does not use: {', '.join(unused)}.",
                           source=source,
                           hint="use each declared input in the source, or do not declare it")


__all__ = ["declared_inputs", "check_inputs_used"]
