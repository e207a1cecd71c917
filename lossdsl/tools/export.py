'''Export a loss as a standalone Python module: a ``keras.losses.Loss`` needing only TF/Keras.

The generated ``call`` is the plan :func:`lossdsl.lower.plans.export_plan` builds,
which is the plan ``lossdsl.compile`` runs (reductions fused the same way, the
same "double where" guards), with the parameters as constructor arguments,
printed by :mod:`lossdsl.backends.text`, the text interpreter of the same nodes
the TF runner interprets. So the exported loss runs the same TF operations as
``lossdsl.compile``, and TensorFlow differentiates them the same way: values and
gradients agree (tests/test_trust_export.py). They may differ in rounding only:
compile folds the parameter values into its constants, orders the factors of a
product small ones first, and has faster forms under XLA. This module only wraps
the printed lines in a module, a class and its ``get_config``. Nothing here
imports TensorFlow.

    >>> code = export_source("mean(-alpha*log(y_pred))", "LogLoss", alpha=0.5)
    >>> "class LogLoss(keras.losses.Loss):" in code
    True
    >>> "def __init__(self, alpha=0.5," in code
    True
'''

from __future__ import annotations

import keyword
from itertools import count
from pathlib import Path

import sympy

from lossdsl.version import __version__
from lossdsl.analysis.analyze import Analysis, analyze, bind_parameters, vector_names
from lossdsl.analysis.parameters import check_values_keep_it_real
from lossdsl.backends.text import print_plan
from lossdsl.backends.text_support import NAMES, Printed, function_source
from lossdsl.errors import DSLNameError
from lossdsl.lower.plans import export_plan
from lossdsl.ops import OPS

# Names the generated `call` uses; a parameter's local variable is renamed off them.
_RESERVED = {"self", "keras", "y_true", "y_pred", "config", "name", "reduction", "align_ranks",
             "y_true_given", "y_pred_given", "pair_vjp",
             *NAMES, *(op.tf.rpartition(".")[2] for op in OPS
                       if op.tf is not None and op.tf.startswith("lossdsl."))}


def export_source(source: str, class_name: str, **params: float) -> str:
    """The text of a standalone Python module defining ``class_name``, a Keras loss.

    Args:
        source: the loss, as for :func:`lossdsl.compile`.
        class_name: a Python identifier for the generated class.
        **params: parameter values; they become the constructor's defaults.
            A parameter without a value becomes a required argument; a list of
            values makes a vector parameter (one value per element of the last axis).

    Returns:
        Python source text; it imports only ``keras`` and ``tensorflow``.

    Raises:
        LossDSLError: a mistake in the source, the parameters or the class name.

    Examples:

    >>> code = export_source("mean((y_true - y_pred)^2)", "MSE")
    >>> "tf.math.reduce_mean(" in code and "import lossdsl" not in code
    True
    """
    _check_identifier(class_name, "class name")
    analysis = analyze(source, vectors=vector_names(params))
    values = bind_parameters(analysis, params, require_all=False)
    check_values_keep_it_real(analysis, values)  # refused as lossdsl.compile refuses them
    for name in analysis.parameters:
        _check_identifier(name, "parameter name")
    return _Module(analysis, class_name, values).text()


def export_to_file(source: str, class_name: str, path: str | Path, **params: float) -> Path:
    """Write :func:`export_source` to ``path``; returns the path."""
    path = Path(path)
    path.write_text(export_source(source, class_name, **params), encoding="utf-8")
    return path


# A parameter becomes a constructor argument and an attribute of the loss; these
# would clash with the Keras Loss's own, or hide the builtins the constructor calls.
_TAKEN_ATTRIBUTES = {"self", "name", "reduction", "dtype", "call", "get_config", "from_config",
                     "float", "super"}


def _check_identifier(name: str, what: str) -> None:
    clashes = what == "parameter name" and (name in _TAKEN_ATTRIBUTES or name.startswith("_"))
    if not name.isidentifier() or keyword.iskeyword(name) or clashes:
        raise DSLNameError(f"`{name}` cannot be used as a Python {what} in an exported module.",
                           hint="rename it: a Python identifier, not a keyword, not starting "
                                "with `_`, not " + "/".join(sorted(_TAKEN_ATTRIBUTES)))


class _Module:
    """Builds the generated module's text from an analysis."""

    def __init__(self, analysis: Analysis, class_name: str, values: dict[str, float]) -> None:
        self.analysis, self.class_name, self.values = analysis, class_name, values
        taken = _RESERVED | set(analysis.parameters)
        self.locals: dict[str, str] = {}
        for name in analysis.parameters:
            local = name
            while local in _RESERVED or local in self.locals.values():
                local += "_"
            self.locals[name] = local
        fresh = (f"t{i}" for i in count() if f"t{i}" not in taken)
        self.plan = export_plan(analysis)
        self.printed: Printed = print_plan(self.plan, self.locals, fresh)
        self.direct = {node["name"] for node in self.plan.nodes if node.kind == "input"}

    def text(self) -> str:
        return "".join([self.docstring(), "\nimport keras\nimport tensorflow as tf\n",
                        function_source("lossdsl.backends.tensorflow.ranks.align_ranks"),
                        self.printed.support(), "\n\n", self.klass(self.call_body())])

    def docstring(self) -> str:
        formula = _text(self.analysis.expression)
        return (f'"""{self.class_name}: a Keras loss exported by lossdsl {__version__} '
                "from one line of source.\n\n"
                f"Source:\n\n    {_escape(self.analysis.canonical)}\n\n"
                f"Per-sample loss (parameters as symbols):\n\n    {_escape(formula)}\n\n"
                f"Its gradient w.r.t. y_pred:\n\n    {_escape(_text(self.analysis.gradient))}\n\n"
                "mean/sum/max/min/logsumexp without axis reduce every axis of a sample (all but\n"
                "the batch axis) and broadcast back like keepdims; n counts the elements they\n"
                "reduce. Keras then reduces the per-sample loss over the batch, weighting by\n"
                "sample_weight. Needs only TensorFlow and Keras at run time.\n"
                '"""\n')

    def klass(self, body: list[str]) -> str:
        names = list(self.analysis.parameters)
        arguments = "".join(f"{name}={self.values[name]!r}, " if name in self.values
                            else f"{name}, " for name in names)
        default_name = _snake(self.class_name)
        lines = [
            f'@keras.saving.register_keras_serializable(package="lossdsl_export", '
            f'name="{self.class_name}")',
            f"class {self.class_name}(keras.losses.Loss):",
            f'    """{_escape(self.analysis.canonical)}',
            "",
            "    Args:",
            *[f"        {name}: the parameter `{name}`." for name in names],
            "        name, reduction, dtype: as for any Keras loss.",
            '    """',
            "",
            f"    def __init__(self, {arguments}name={default_name!r}, "
            'reduction="sum_over_batch_size", dtype=None):',
            "        super().__init__(name=name, reduction=reduction, dtype=dtype)",
            # A vector parameter (one value per class) is a list, broadcast along the last axis.
            *[f"        self.{name} = [float(v) for v in {name}]" if name in self.analysis.vectors
              else f"        self.{name} = float({name})" for name in names],
            "",
            "    def call(self, y_true, y_pred):",
            *[f"        {line}" for line in body],
            "",
            "    def get_config(self):",
            '        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype'
            + "".join(f',\n                "{name}": self.{name}' for name in names) + "}",
        ]
        return "\n".join(lines) + "\n"

    def call_body(self) -> list[str]:
        # A batch statistic would silently be each replica's: refused, as lossdsl's loss does.
        statistics = ", ".join(self.analysis.batch_reductions)
        refusal = [
            "context = tf.distribute.get_replica_context()",
            "if context is not None and context.num_replicas_in_sync > 1:",
            f"    raise ValueError({_REPLICAS!r}.format(context.num_replicas_in_sync))",
        ] if statistics else []
        return refusal + self._computation()

    def _computation(self) -> list[str]:
        lines = [
            "y_pred = tf.convert_to_tensor(y_pred)",
            "y_true = tf.cast(y_true, y_pred.dtype)",
            "y_true, y_pred = align_ranks(y_true, y_pred)",
        ]
        if self.plan.has_pairs:  # rows over the batch: pair functions read the inputs as given
            rows = self.plan.rows  # (batch, batch) over pairs, (batch, batch, batch) over triples
            lines += [
                "y_true_given, y_pred_given = y_true, y_pred",
                f"dtype, rank = y_pred.dtype, {1 + rows}",
                f"shape = tf.stack([tf.shape(y_pred)[0]] * {1 + rows})",
                *((f"{name} = {name}[:, tf.newaxis] if {name}.shape.rank == 1 else {name}"
                   "  # one number per sample: a column") if rows == 1 else
                  (f"{name} = tf.reshape({name}, tf.stack([tf.shape({name})[0], 1, 1]))"
                   "  # one number per sample (a wider input fails here)")
                  for name in sorted(self.direct)),
                "y_true, y_pred = tf.broadcast_to(y_true, shape), tf.broadcast_to(y_pred, shape)"
                if {"y_true", "y_pred"} <= self.direct else
                "y_true = tf.broadcast_to(y_true, shape)" if "y_true" in self.direct else
                "y_pred = tf.broadcast_to(y_pred, shape)" if "y_pred" in self.direct else "",
            ]
            return [line for line in lines if line] + self._lines()
        lines += [
            "dtype, rank = y_pred.dtype, y_pred.shape.rank",
            "shape = tf.broadcast_dynamic_shape(tf.shape(y_true), tf.shape(y_pred))",
            "y_true, y_pred = tf.broadcast_to(y_true, shape), tf.broadcast_to(y_pred, shape)",
        ]
        return lines + self._lines()

    def _lines(self) -> list[str]:
        lines = []
        lines += [f"{local} = tf.constant(self.{name}, dtype)" for name, local in self.locals.items()]
        return lines + self.printed.lines + [f"return {self.printed.outputs['loss']}"]


_REPLICAS = ("This loss computes batch statistics (axis=0); under tf.distribute with {} replicas "
             "each would see only its shard of the batch: global statistics across replicas are "
             "not supported.")


def _text(expr: sympy.Basic) -> str:
    return sympy.sstr(expr, full_prec=False)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _snake(class_name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower()
                   for i, c in enumerate(class_name))
