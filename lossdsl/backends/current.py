"""The backend module of the Keras backend in use (``KERAS_BACKEND``), for the Keras stage.

TensorFlow gets :mod:`lossdsl.backends.tensorflow.loss_functions` (the TF runner
and its fast paths); every other Keras 3 backend (JAX, PyTorch) gets
:mod:`lossdsl.backends.keras_ops.loss_functions`, which runs the same plan through
``keras.ops``. Both modules offer the same names: ``NAME``, ``AUTODIFF``,
``runner``, ``autodiff_loss``, ``symbolic_loss``, ``batch_inputs``,
``per_sample_values``, ``check_values``, ``check_dtype``, ``check_batch_statistics``.

Importing this module imports Keras (and so its backend).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from types import ModuleType

import keras

from lossdsl.errors import DSLConfigError

MODULES = {"tensorflow": "lossdsl.backends.tensorflow.loss_functions",
           "jax": "lossdsl.backends.keras_ops.loss_functions",
           "torch": "lossdsl.backends.keras_ops.loss_functions"}


@lru_cache(maxsize=None)
def _module(backend: str) -> ModuleType:
    if backend not in MODULES:  # NumPy and OpenVINO run no gradients: no loss to train with
        raise DSLConfigError(f"lossdsl runs on the Keras backends {', '.join(MODULES)}; "
                             f"this process uses {backend!r}.",
                             hint="set KERAS_BACKEND=tensorflow, jax or torch before keras is "
                                  "imported")
    return importlib.import_module(MODULES[backend])


def backend_functions() -> ModuleType:
    """The module that runs plans on the current Keras backend.

        >>> backend_functions().NAME == keras.backend.backend()
        True
    """
    return _module(keras.backend.backend())


__all__ = ["backend_functions"]
