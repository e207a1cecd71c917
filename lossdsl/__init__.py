"""lossdsl: write a loss as one line, get a Keras loss with its gradient derived and checked.

    >>> import lossdsl
    >>> loss = lossdsl.compile("mean((y_true - y_pred)^2) + 0.1*mean((0.5 - y_pred)^2)")
    >>> loss.gradient
    n = sum(1); (2.2 * y_pred - 2 * y_true - 0.1) / n
    >>> lossdsl.check_gradients(loss).passed
    True

Importing lossdsl, parsing and differentiating do not import TensorFlow; building
a Keras object does.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Iterable, Mapping

# Internals kept as attributes for scripts that used them (not in __all__):
from lossdsl.analysis.analyze import CompiledExpression, analyze, compile_expression  # noqa: F401
from lossdsl.errors import (DSLArityError, DSLAxisError, DSLConfigError, DSLLimitError,
                            DSLNameError, DSLShapeError, DSLSyntaxError, DSLTypeError,
                            GradientMismatchError, LossDSLError, LossDSLWarning)
from lossdsl.analysis.explain import Explanation, explain
from lossdsl.language.ir import parse_source  # noqa: F401
from lossdsl import losses  # the loss library; TF is imported only when a loss is built
from lossdsl.version import __version__  # noqa: F401

if TYPE_CHECKING:
    from lossdsl.tools.check import GradientReport, check_gradients
    from lossdsl.keras.loss import DSLLoss
    from lossdsl.keras.metric import DSLMetric
    from lossdsl.keras.model import LossInputsModel
    from lossdsl.keras.penalty import DSLActivityPenalty, DSLRegularizer


def compile(source: str, *, name: str | None = None,  # noqa: A001 - the public name
            reduction: str | None = "sum_over_batch_size", dtype: str | None = None,
            gradient: str = "autodiff", params: Mapping[str, float] | None = None,
            inputs: Iterable[str] | None = None, **param_values: float) -> "DSLLoss":
    """Compile a one-line loss into a ``keras.losses.Loss``.

    Args:
        source: the loss of one sample, e.g. ``"mean((y_true - y_pred)^2)"``.
        name, reduction, dtype: as for any Keras loss.
        gradient: how the backward pass is computed (see the README).
        params: parameter values as a mapping (for names that clash with the
            keywords above).
        inputs: names of extra elementwise inputs, e.g. ``["mask"]``: ``y_true``
            is then a dict ``{"y_true": labels, "mask": mask}`` (in ``fit``, through a
            :class:`LossInputsModel`); only ``y_pred`` is differentiated.
        **param_values: parameter values, e.g. ``alpha=0.25``; they override
            defaults bound in the source.

    Returns:
        A :class:`lossdsl.keras.loss.DSLLoss`, which also carries ``source``,
        ``params``, ``expression``, ``gradient`` and ``parameter_gradients``.

    Raises:
        LossDSLError: for any mistake in the source or the parameters.

    Examples:

    >>> focal = compile("mean(-alpha*y_true*(1-y_pred)^gamma*log(y_pred))",
    ...                 alpha=0.25, gamma=2.0)
    >>> sorted(focal.params.items())
    [('alpha', 0.25), ('gamma', 2.0)]
    """
    from lossdsl.keras.loss import DSLLoss

    values = {**dict(params or {}), **param_values}
    return DSLLoss(source, values, name=name, reduction=reduction, dtype=dtype,
                   gradient=gradient, inputs=inputs)


def metric(source: str, *, name: str | None = None, dtype: str | None = None,
           direction: str | None = None, params: Mapping[str, float] | None = None,
           inputs: Iterable[str] | None = None, **param_values: float) -> "DSLMetric":
    """Compile a one-line expression into a ``keras.metrics.Metric`` (a running mean).

    See :class:`lossdsl.keras.metric.DSLMetric`; arguments as for :func:`compile`;
    ``direction`` (``"down"``/``"up"``) tells Keras's callbacks which way is better.

    >>> mae = metric("mean(abs(y_true - y_pred))", name="mae")
    >>> mae.name
    'mae'
    """
    from lossdsl.keras.metric import DSLMetric

    return DSLMetric(source, {**dict(params or {}), **param_values}, name=name, dtype=dtype,
                     direction=direction, inputs=inputs)


def regularizer(source: str, *, params: Mapping[str, float] | None = None,
                **param_values: float) -> "DSLRegularizer":
    """Compile a one-line expression in the weight ``w`` into a ``keras.regularizers.Regularizer``.

    See :class:`lossdsl.keras.penalty.DSLRegularizer` (a weight is a batch of one).

    >>> regularizer("0.5*alpha*sum(w^2)", alpha=0.01).gradient
    alpha * w
    """
    from lossdsl.keras.penalty import DSLRegularizer

    return DSLRegularizer(source, {**dict(params or {}), **param_values})


def activity_penalty(source: str, *, params: Mapping[str, float] | None = None,
                     **param_values: float) -> "DSLActivityPenalty":
    """Compile a per-sample expression in activations ``a`` for ``activity_regularizer=``.

    See :class:`lossdsl.keras.penalty.DSLActivityPenalty`; for a layer that
    calls ``add_loss`` itself, use :class:`lossdsl.ActivityPenalty`.

    >>> activity_penalty("beta*mean(a^2)", beta=0.1).gradient
    n = sum(1); 2 * a * beta / n
    """
    from lossdsl.keras.penalty import DSLActivityPenalty

    return DSLActivityPenalty(source, {**dict(params or {}), **param_values})


_KERAS_CLASSES = {"DSLLoss": "lossdsl.keras.loss", "DSLMetric": "lossdsl.keras.metric",
                  "DSLRegularizer": "lossdsl.keras.penalty",
                  "DSLActivityPenalty": "lossdsl.keras.penalty",
                  "ActivityPenalty": "lossdsl.keras.penalty",
                  "LossInputsModel": "lossdsl.keras.model"}


def __getattr__(name: str) -> Any:
    # The Keras classes live behind Keras; import them only when asked for.
    if name in _KERAS_CLASSES:
        import importlib
        return getattr(importlib.import_module(_KERAS_CLASSES[name]), name)
    # The gradient check needs numpy; `lossdsl show`/`ops`/`export` start faster without it.
    if name in ("check_gradients", "GradientReport"):
        from lossdsl.tools import check
        return getattr(check, name)
    raise AttributeError(f"module 'lossdsl' has no attribute {name!r}")


_KERAS_MODULES = ("lossdsl.keras.loss", "lossdsl.keras.metric", "lossdsl.keras.penalty",
                  "lossdsl.keras.model")


def _register_with_keras() -> None:
    """Import lossdsl's Keras classes, whose decorators register them for ``load_model``."""
    import importlib
    for module in _KERAS_MODULES:
        importlib.import_module(module)


def _keras_is_loaded() -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and hasattr(keras, "saving")


class _RegisterWhenKerasLoads:
    """Registers lossdsl's classes with Keras as soon as Keras is imported, in any order.

    Keras finds a saved object's class only among *registered* classes (it
    imports the ``module`` recorded in a config for its own packages only), and
    registering a class needs Keras, hence TensorFlow, which ``import lossdsl``
    must not import. So while Keras is not loaded, this finder waits on
    ``sys.meta_path`` (Python's import hook, not a patch of Keras): it lets the
    usual finders find ``keras``, ``tensorflow`` (each imports the other) and
    lossdsl's own modules, counts those being executed, and when the outermost
    has finished with Keras loaded, it imports lossdsl's Keras modules (their
    decorators register the classes) and removes itself. Waiting for the
    outermost import means no module it needs is half-initialized then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = threading.local()  # per thread: watched modules being executed

    @staticmethod
    def _watched(name: str) -> bool:
        return name in ("keras", "tensorflow") or name.startswith("lossdsl.")

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not self._watched(fullname):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _NotifyingLoader(spec.loader, self)
        return spec

    def entered(self) -> None:
        self._depth.value = getattr(self._depth, "value", 0) + 1

    def left(self, failed: bool) -> None:
        self._depth.value -= 1
        if failed or self._depth.value or not _keras_is_loaded():
            return
        with self._lock:
            if self not in sys.meta_path:
                return
            sys.meta_path.remove(self)
        try:
            _register_with_keras()
        except Exception as error:  # noqa: BLE001 - importing Keras must not fail because of lossdsl
            import warnings
            warnings.warn(f"lossdsl could not register its classes with Keras ({error!r}); "
                          "import lossdsl.keras.loss before keras.models.load_model",
                          LossDSLWarning, stacklevel=2)


class _NotifyingLoader:
    """Runs a module's own loader, then tells the finder; the module keeps its own loader."""

    def __init__(self, loader: Any, finder: _RegisterWhenKerasLoads) -> None:
        self._loader, self._finder = loader, finder

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._finder.entered()
        failed = True
        try:
            self._loader.exec_module(module)
            failed = False
        finally:
            self._finder.left(failed)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, get_code, ...
        return getattr(self._loader, name)


def _register_now_or_when_keras_loads() -> None:
    """Make ``keras.models.load_model`` find lossdsl's classes, whichever is imported first."""
    if _keras_is_loaded():
        _register_with_keras()
    elif "keras" not in sys.modules and not any(
            isinstance(finder, _RegisterWhenKerasLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterWhenKerasLoads())


_register_now_or_when_keras_loads()

# The public façade. `analyze`, `compile_expression`, `CompiledExpression` and `parse_source`
# stay attributes for scripts that used them, but live in lossdsl.analysis.analyze and
# lossdsl.language.ir.
__all__ = [
    "compile", "metric", "regularizer", "activity_penalty", "check_gradients", "losses",
    "explain", "Explanation", "GradientReport", "DSLLoss", "DSLMetric", "LossInputsModel",
    "DSLRegularizer", "DSLActivityPenalty", "ActivityPenalty", "LossDSLError", "DSLSyntaxError",
    "DSLNameError", "DSLArityError", "DSLAxisError", "DSLTypeError", "DSLLimitError",
    "DSLShapeError", "DSLConfigError", "GradientMismatchError", "LossDSLWarning",
]
