'''Export a loss as a standalone Python module: a ``keras.losses.Loss`` needing only TF/Keras.

The generated code is straight-line TensorFlow, one line per distinct
subexpression of the loss, in the order :func:`lossdsl.tf_lower.build_plan`
gives, with each function's TF form taken from :data:`lossdsl.ops.OPS` and
SymPy's own nodes from the tables of :mod:`lossdsl.tf_lower`. So the exported
loss runs the same TF operations as ``lossdsl.compile``, and TensorFlow
differentiates them the same way: values and gradients agree. Parameters become
constructor arguments. Nothing here imports TensorFlow.

    >>> code = export_source("mean(-alpha*log(y_pred))", "LogLoss", alpha=0.5)
    >>> "class LogLoss(keras.losses.Loss):" in code
    True
    >>> "def __init__(self, alpha=0.5," in code
    True
'''

from __future__ import annotations

import ast
import keyword
from itertools import count
from pathlib import Path

import sympy

from lossdsl import __version__
from lossdsl.compiler import Analysis, analyze, bind_parameters
from lossdsl.errors import DSLNameError, LossDSLError
from lossdsl.ops import BY_SYMPY_HEAD, REGISTRY
from lossdsl.symbolic import ReductionTable
from lossdsl.tf_lower import (LOGIC, POWER_FUNCTIONS, RELATIONS, UNARY, build_plan,
                              split_product, split_sum)

_RESERVED = {"self", "tf", "keras", "dtype", "shape", "rank", "y_true", "y_pred", "config",
             "name", "reduction"}

# Helpers the generated module may need, by name; included only when used.
_HELPERS: dict[str, str] = {
    "_axes": '''

def _axes(rank, axis):
    """Non-negative axes of a batch of `rank` for an axis spec (None: all but the batch axis)."""
    if axis is None:
        return list(range(1, rank))
    resolved = [a + rank if a < 0 else a for a in axis]
    if not all(1 <= a < rank for a in resolved):
        raise ValueError(f"axis={axis} does not exist for inputs of rank {rank}")
    return resolved
''',
    "_count": '''

def _count(shape, axes, dtype):
    """How many elements a reduction over `axes` reduces."""
    sizes = tf.gather(shape, axes) if axes else tf.ones([1], "int32")
    return tf.cast(tf.reduce_prod(sizes), dtype)
''',
    "_step": '''

def _step(x, at_zero):
    """Heaviside step: 1 above 0, 0 below, `at_zero` at 0 (TF's gradient at kinks)."""
    middle = tf.fill(tf.shape(x), tf.cast(at_zero, x.dtype))
    return tf.where(x > 0, tf.ones_like(x), tf.where(x < 0, tf.zeros_like(x), middle))
''',
}

_PER_SAMPLE = '''

def _per_sample(value, shape, rank, reduced):
    """The per-sample loss: drop the axes every reduction of the loss reduced.

    `reduced` is None when the loss is elementwise, else the axis specs of its reductions.
    """
    axes = [] if reduced is None else sorted(
        set(range(1, rank)).intersection(*(_axes(rank, axis) for axis in reduced)))
    if not axes:
        return tf.broadcast_to(value, shape)
    keep = tf.tensor_scatter_nd_update(shape, [[a] for a in axes],
                                       tf.ones([len(axes)], shape.dtype))
    return tf.squeeze(tf.broadcast_to(value, keep), axis=axes)
'''


def export_source(source: str, class_name: str, **params: float) -> str:
    """The text of a standalone Python module defining ``class_name``, a Keras loss.

    Args:
        source: the loss, as for :func:`lossdsl.compile`.
        class_name: a Python identifier for the generated class.
        **params: parameter values; they become the constructor's defaults.
            A parameter without a value becomes a required argument.

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
    analysis = analyze(source)
    values = bind_parameters(analysis, params, require_all=False)
    for name in analysis.parameters:
        _check_identifier(name, "parameter name")
    return _Module(analysis, class_name, values).text()


def export_to_file(source: str, class_name: str, path: str | Path, **params: float) -> Path:
    """Write :func:`export_source` to ``path``; returns the path."""
    path = Path(path)
    path.write_text(export_source(source, class_name, **params), encoding="utf-8")
    return path


# A parameter becomes a constructor argument and an attribute of the loss; these
# would clash with the Keras Loss's own.
_TAKEN_ATTRIBUTES = {"self", "name", "reduction", "dtype", "call", "get_config", "from_config"}


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
        self.table: ReductionTable = analysis.table
        self.helpers: set[str] = set()
        taken = _RESERVED | set(analysis.parameters)
        self.fresh = (f"t{i}" for i in count() if f"t{i}" not in taken)
        self.locals = {symbol: name if name not in _RESERVED else f"{name}_"
                       for name, symbol in analysis.parameters.items()}

    def text(self) -> str:
        body = self.call_body()
        helpers = "".join(_HELPERS[name] for name in _HELPERS if name in self.helpers)
        return "".join([self.docstring(), "\nimport keras\nimport tensorflow as tf\n\n",
                        _align_ranks_source(), helpers, _PER_SAMPLE, "\n\n", self.klass(body)])

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
            *[f"        self.{name} = float({name})" for name in names],
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
        lines = [
            "y_pred = tf.convert_to_tensor(y_pred)",
            "y_true = tf.cast(y_true, y_pred.dtype)",
            "y_true, y_pred = align_ranks(y_true, y_pred)",
            "dtype, rank = y_pred.dtype, y_pred.shape.rank",
            "shape = tf.broadcast_dynamic_shape(tf.shape(y_true), tf.shape(y_pred))",
            "y_true, y_pred = tf.broadcast_to(y_true, shape), tf.broadcast_to(y_pred, shape)",
        ]
        lines += [f"{local} = tf.constant(self.{name}, dtype)"
                  for name, local in zip(self.analysis.parameters, self.locals.values())]
        output = self.analysis.expression
        names: dict[sympy.Basic, str] = {}
        for node in build_plan([output], self.table):
            code = self.emit(node.expr, [names[c] for c in node.children])
            if _is_inline(node.expr, self.table):
                names[node.expr] = code
            else:
                names[node.expr] = next(self.fresh)
                lines.append(f"{names[node.expr]} = {code}  # {_comment(node.expr)}")
        self.helpers.add("_axes")
        lines.append(f"return _per_sample({names[output]}, shape, rank, "
                     f"{self.reduced_axes(output)})")
        return lines

    def reduced_axes(self, output: sympy.Expr) -> str:
        free = output.free_symbols
        if free & self.table.inputs:
            return "None"
        axes = sorted({self.table[s].axis for s in free if s in self.table}, key=repr)
        return repr(axes)

    def emit(self, expr: sympy.Basic, args: list[str]) -> str:
        """Python code for one node, given the code naming each of its children."""
        if expr in self.table:
            return self.reduction(expr, args[0])
        if isinstance(expr, sympy.Symbol):
            return self.symbol(expr)
        if expr.is_Number or isinstance(expr, sympy.NumberSymbol) or expr in _SPECIAL:
            return f"tf.constant({_SPECIAL.get(expr) or repr(float(expr))}, dtype)"
        for kinds, rule in ((RELATIONS, "call"), (UNARY, "call"), (LOGIC, "fold")):
            for kind, path in kinds.items():
                if isinstance(expr, kind):
                    return _fold(path, args) if rule == "fold" else f"tf.{path}({', '.join(args)})"
        for kind, method in _INTERNAL.items():
            if isinstance(expr, kind):
                return getattr(self, method)(expr, args)
        op = BY_SYMPY_HEAD.get(type(expr))
        if op is None or op.tf is None:
            raise LossDSLError(f"Internal error: cannot export the SymPy node "
                               f"{type(expr).__name__} ({expr}).")
        return f"tf.{op.tf}({', '.join(args)})"

    def symbol(self, symbol: sympy.Symbol) -> str:
        if symbol in self.table.inputs:
            return symbol.name
        if symbol in self.locals:
            return self.locals[symbol]
        if symbol.name == "n" or symbol.name.startswith("n["):
            self.helpers.update({"_axes", "_count"})
            axis = None if symbol.name == "n" else tuple(int(a) for a in symbol.name[2:-1].split(","))
            return f"_count(shape, _axes(rank, {axis!r}), dtype)"
        raise LossDSLError(f"Internal error: cannot export the symbol `{symbol}`.")

    def reduction(self, symbol: sympy.Symbol, arg: str) -> str:
        reduction = self.table[symbol]
        self.helpers.add("_axes")
        if not reduction.arg.free_symbols & self.table.inputs:
            arg = f"tf.broadcast_to({arg}, shape)"  # sum(1) counts elements
        return (f"tf.{REGISTRY[reduction.kind].tf}({arg}, axis=_axes(rank, "
                f"{reduction.axis!r}), keepdims=True)")

    def add(self, expr: sympy.Add, args: list[str]) -> str:
        signs, _ = split_sum(expr)
        text = args[0] if signs[0] > 0 else f"-{args[0]}"
        return text + "".join(f" {'+' if s > 0 else '-'} {a}" for s, a in zip(signs[1:], args[1:]))

    def mul(self, expr: sympy.Mul, args: list[str]) -> str:
        numerator, _ = split_product(expr)
        split = len(numerator)
        return " * ".join(args[:split]) + "".join(f" / {a}" for a in args[split:])

    def pow(self, expr: sympy.Pow, args: list[str]) -> str:
        exponent = expr.exp
        if not (exponent.is_number and exponent.is_real):
            return f"tf.pow({args[0]}, {args[1]})"
        value = float(exponent)
        if value in POWER_FUNCTIONS:
            return f"tf.{POWER_FUNCTIONS[value]}({args[0]})"
        if value == 1.0:
            return args[0]
        if value == 3.0:
            return f"{args[0]} * {args[0]} * {args[0]}"
        return f"tf.pow({args[0]}, tf.constant({value!r}, dtype))"

    def piecewise(self, expr: sympy.Piecewise, args: list[str]) -> str:
        has_default = expr.args[-1].cond is sympy.true
        pairs = list(zip(args[0::2], args[1::2]))
        result = args[-1] if has_default else 'tf.constant(float("nan"), dtype)'
        for value, condition in reversed(pairs):
            result = f"tf.where({condition}, {value}, {result})"
        return result

    def heaviside(self, expr: sympy.Heaviside, args: list[str]) -> str:
        self.helpers.add("_step")
        at_zero = float(expr.args[1]) if len(expr.args) > 1 and expr.args[1].is_number else 0.5
        return f"_step({args[0]}, {at_zero!r})"


_INTERNAL = {sympy.Add: "add", sympy.Mul: "mul", sympy.Pow: "pow",
             sympy.Piecewise: "piecewise", sympy.Heaviside: "heaviside"}
_SPECIAL = {sympy.oo: 'float("inf")', -sympy.oo: 'float("-inf")',
            sympy.zoo: 'float("inf")', sympy.nan: 'float("nan")'}


def _is_inline(expr: sympy.Basic, table: ReductionTable) -> bool:
    """Leaves (inputs, parameters, numbers) are written in place, not named."""
    if isinstance(expr, sympy.Symbol):
        is_count = expr.name == "n" or expr.name.startswith("n[")
        return expr not in table and not is_count
    return expr.is_Number or expr in _SPECIAL or isinstance(expr, sympy.NumberSymbol)


def _fold(path: str, args: list[str]) -> str:
    result = args[0]
    for arg in args[1:]:
        result = f"tf.{path}({result}, {arg})"
    return result


def _align_ranks_source() -> str:
    """``lossdsl.keras_loss.align_ranks``, copied from its file (importing it would load TF)."""
    path = Path(__file__).with_name("keras_loss.py")
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == "align_ranks":
            return "\n" + ast.get_source_segment(text, node) + "\n"
    raise LossDSLError("Internal error: align_ranks not found in keras_loss.py.")


def _text(expr: sympy.Basic) -> str:
    return sympy.sstr(expr, full_prec=False)


def _comment(expr: sympy.Basic) -> str:
    text = _text(expr)
    return text if len(text) <= 70 else text[:67] + "..."


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _snake(class_name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower()
                   for i, c in enumerate(class_name))
