"""What other libraries call lossdsl's functions, so that errors can teach the language.

A user who writes ``ln(x)``, ``tf.reduce_mean(x)``, ``K.mean(x)`` or ``x if c else y`` is
told the lossdsl spelling, by :mod:`~lossdsl.language.parse` (syntax errors) and
:mod:`~lossdsl.language.tree_to_ir` (unknown functions, wrong arity).

    >>> lossdsl_name("reduce_mean"), lossdsl_name("np.log"), lossdsl_name("frobnicate")
    ('mean', 'log', None)
"""

from __future__ import annotations

import re

from lossdsl.ops import REGISTRY

# Names NumPy, TensorFlow, Keras, PyTorch, JAX or `math` use, by their lossdsl name. A name
# that is already a lossdsl function (`log`, `exp`) needs no entry: dropping the module is enough.
FOREIGN_NAMES: dict[str, str] = {
    "ln": "log", "log_e": "log", "reduce_mean": "mean", "average": "mean", "nanmean": "mean",
    "reduce_sum": "sum", "nansum": "sum", "reduce_max": "max", "amax": "max",
    "reduce_min": "min", "amin": "min", "reduce_prod": "prod", "product": "prod",
    "reduce_std": "std", "stddev": "std", "reduce_variance": "var", "variance": "var",
    "reduce_logsumexp": "logsumexp", "reduce_euclidean_norm": "norm", "l2_norm": "norm",
    "absolute": "abs", "fabs": "abs", "power": "pow", "clip_by_value": "clip", "clamp": "clip",
    "logistic": "sigmoid", "expit": "sigmoid", "gammaln": "lgamma", "loggamma": "lgamma",
    "detach": "stop_gradient", "fmax": "maximum", "fmin": "minimum",
}

# The reductions whose elementwise twin of two arguments people reach for by the same name.
ELEMENTWISE_TWINS: dict[str, str] = {"max": "maximum", "min": "minimum"}

# `np.log(`, `tf.math.reduce_mean(`, `K.mean(`, `torch.mean(`: a dotted name called.
DOTTED_CALL = re.compile(r"\b((?:[A-Za-z_]\w*\.)+)([A-Za-z_]\w*)\s*(?=\()")


def lossdsl_name(name: str) -> str | None:
    """The lossdsl function another library's ``name`` (dotted or not) means, if any."""
    last = name.rpartition(".")[2]
    if last in REGISTRY:
        return last
    return FOREIGN_NAMES.get(last) or FOREIGN_NAMES.get(last.lower())


def dotted_call_hint(source: str) -> str | None:
    """A hint for the first ``module.function(`` in ``source``: lossdsl names have no prefix."""
    match = DOTTED_CALL.search(source)
    if match is None:
        return None
    prefix, name = match.group(1), match.group(2)
    ours = lossdsl_name(name)
    if ours is None:
        return f"lossdsl's functions have no module prefix: drop `{prefix}`; " \
               "`lossdsl ops` lists them"
    return f"lossdsl's functions have no module prefix: write `{ours}(...)` " \
           f"instead of `{prefix}{name}(...)`"
