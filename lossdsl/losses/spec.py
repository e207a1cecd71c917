"""One row of the loss library (:class:`LossSpec`) and how a row becomes a Keras loss.

A row holds a loss's source text (its parameters' defaults bound in the
source, ``alpha = 0.25; ...``), a one-line doc, the options that choose the
source, and the Keras built-in it reproduces or the paper it comes from.
Calling a row's :meth:`LossSpec.to_loss` sorts the keywords: options choose the
source, :class:`LossSettings` go to the Keras loss, the rest are parameter values.

    >>> spec = LossSpec("scaled_mse", lambda: "scale = 2; scale*mean((y_true - y_pred)^2)",
    ...                 "scaled mean squared error", citation="an example")
    >>> spec.source, spec.params
    ('scale = 2; scale*mean((y_true - y_pred)^2)', {'scale': 2.0})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypedDict

from lossdsl.errors import DSLConfigError

if TYPE_CHECKING:
    from lossdsl.keras.loss import DSLLoss

Source = Callable[..., str]
"""Builds a loss's source from its options (keyword arguments)."""

EPSILON = "1e-7"
"""``keras.config.epsilon()``, as the literal the Keras-parity sources clip by."""


class LossSettings(TypedDict, total=False):
    """Keywords every library loss passes to the Keras loss rather than to its formula.

    Attributes:
        name: the loss's name (defaults to the library name, e.g. ``"focal"``).
        reduction: a Keras reduction (default ``"sum_over_batch_size"``).
        dtype: the dtype the loss computes in (default ``keras.config.floatx()``).
        gradient: ``"autodiff"`` (default) or ``"symbolic"``.
    """

    name: str
    reduction: str | None
    dtype: str | None
    gradient: str


SETTINGS: tuple[str, ...] = tuple(LossSettings.__annotations__)
"""The names of :class:`LossSettings`, in order."""


@dataclass(frozen=True)
class LossSpec:
    """One loss of the library.

    Attributes:
        name: the callable's name in :mod:`lossdsl.losses`.
        build: the source, given the options as keywords.
        doc: one line: what the loss is.
        options: options that choose the source, with their defaults.
        keras: the ``keras.losses`` class this loss equals, if any.
        citation: the paper, for losses from the literature.
    """

    name: str
    build: Source = field(repr=False)
    doc: str
    options: Mapping[str, Any] = field(default_factory=dict)
    keras: str | None = None
    citation: str | None = None

    @property
    def source(self) -> str:
        """The source with every option at its default."""
        return self.source_for()

    def source_for(self, **options: Any) -> str:
        """The source for these options (unnamed ones take their defaults).

        Raises:
            DSLConfigError: an option has a value of the wrong kind.
        """
        chosen = {**self.options, **options}
        for key, value in chosen.items():
            check_option(self.name, key, value)
        return self.build(**chosen)

    @property
    def params(self) -> dict[str, float]:
        """The parameters of the default source and their default values."""
        # Function-level import: analysis is below losses, and listing the library
        # must not pay for SymPy until a parameter list is asked for.
        from lossdsl.analysis.analyze import analyze

        return dict(analyze(self.source).defaults)

    def to_loss(self, **keywords: Any) -> "DSLLoss":
        """The Keras loss for these keywords: options, :class:`LossSettings`, parameter values.

        Raises:
            DSLNameError: a keyword names no parameter (with the nearest name suggested).
            DSLConfigError: an option has a value of the wrong kind.
        """
        # Keras (and TensorFlow) are imported only when a loss is built, not on import.
        from lossdsl.keras.loss import DSLLoss

        options = {k: keywords.pop(k) for k in list(keywords) if k in self.options}
        settings = {k: keywords.pop(k) for k in list(keywords) if k in SETTINGS}
        settings.setdefault("name", self.name)
        return DSLLoss(self.source_for(**options), keywords, **settings)


def check_option(loss: str, key: str, value: Any) -> None:
    """Refuse an option value of the wrong kind: ``axis`` takes ints, the others booleans.

    Raises:
        DSLConfigError: naming the option, the loss and what it accepts.
    """
    if key == "axis":
        valid = value is None or isinstance(value, int) or (
            isinstance(value, tuple) and value and all(isinstance(a, int) for a in value))
        valid = valid and not isinstance(value, bool)
        expected = "None, an int or a tuple of ints"
    else:
        valid, expected = isinstance(value, bool), "True or False"
    if not valid:
        raise DSLConfigError(f"The option `{key}` of `{loss}` must be {expected}. "
                             f"Received: {value!r}.",
                             hint="lossdsl.losses.available() lists each loss's options")


def fixed(source: str) -> Source:
    """The builder of a loss that has no options: always ``source``."""
    return lambda: source
