"""The whole library as one table: :data:`LIBRARY`, :func:`available` and :func:`make`.

    >>> [spec.name for spec in available()][:3]
    ['mean_squared_error', 'mean_absolute_error', 'mean_absolute_percentage_error']
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from lossdsl.errors import DSLNameError
from lossdsl.losses.keras_sources import KERAS_BUILTINS
from lossdsl.losses.literature_sources import LITERATURE
from lossdsl.losses.metric_learning_sources import METRIC_LEARNING
from lossdsl.losses.spec import LossSpec

if TYPE_CHECKING:
    from lossdsl.keras.loss import DSLLoss

LIBRARY: tuple[LossSpec, ...] = KERAS_BUILTINS + LITERATURE + METRIC_LEARNING
"""Every loss: the Keras built-ins first, then the losses from the literature, then the
metric-learning losses (pairs of samples)."""

REGISTRY: Mapping[str, LossSpec] = MappingProxyType({spec.name: spec for spec in LIBRARY})
"""The rows of :data:`LIBRARY` by name."""
assert len(REGISTRY) == len(LIBRARY), "duplicate loss name in LIBRARY"


def available() -> tuple[LossSpec, ...]:
    """Every loss of the library, in table order.

    Returns:
        The :class:`LossSpec` rows: ``name``, ``source``, ``doc``, ``params``,
        ``options``, and ``keras`` or ``citation``.

    Examples:

    >>> spec = {s.name: s for s in available()}["huber"]
    >>> spec.keras, spec.params
    ('Huber', {'delta': 1.0})
    """
    return LIBRARY


def make(loss: str, /, **keywords: Any) -> "DSLLoss":
    """Compile the library loss named ``loss``; keywords as for its callable.

    Raises:
        DSLNameError: ``loss`` is not in the library, or a keyword names no
            parameter (with the nearest name suggested).
        DSLConfigError: an option has a value of the wrong kind.

    Examples:

    >>> make("focal", alpha=0.5).params
    {'alpha': 0.5, 'gamma': 2.0}
    """
    return spec_named(loss).to_loss(**keywords)


def spec_named(name: str) -> LossSpec:
    """The row named ``name``.

    Raises:
        DSLNameError: no loss has that name (the nearest one is suggested).
    """
    if name in REGISTRY:
        return REGISTRY[name]
    close = difflib.get_close_matches(name, list(REGISTRY), n=1)
    message = f"`{name}` is not a loss of lossdsl.losses."
    if close:
        message += f" Did you mean `{close[0]}`?"
    raise DSLNameError(message, hint="lossdsl.losses.available() lists them")
