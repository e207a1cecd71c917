'''Export a loss as a standalone Python module: a ``keras.losses.Loss`` needing only TF/Keras.

The generated code is straight-line TensorFlow, one line per node of the plan
:func:`lossdsl.lower.plan.build_plan` builds for ``lossdsl.compile`` (of the loss
with its reductions fused as :mod:`lossdsl.symbolic.fuse` fuses them), in its order, each
node written as :mod:`lossdsl.lower.plan` runs it: a function's TF form from
:data:`lossdsl.ops.OPS` (a TF function lossdsl defines itself, such as
``one_hot``'s, is copied into the module), SymPy's own nodes from the tables of
:mod:`lossdsl.lower.plan`, and a ``where`` whose branches can blow up with the same
"double where" guard. So the exported loss runs the same TF operations as
``lossdsl.compile``, and TensorFlow differentiates them the same way: values and
gradients agree (tests/test_trust_export.py). They may differ in rounding only:
compile folds the parameter values into its constants, orders the factors of a
product small ones first, and has faster forms under XLA. Parameters become
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
from lossdsl.analysis.analyze import Analysis, analyze, bind_parameters
from lossdsl.errors import DSLNameError, LossDSLError
from lossdsl.symbolic.fuse import fuse_reductions
from lossdsl.ops import BY_SYMPY_HEAD, OPS, REGISTRY, varies_by_position
from lossdsl.symbolic.translate import ReductionTable
from lossdsl.lower.plan import (LOGIC, POWER_FUNCTIONS, RELATIONS, UNARY, build_plan,
                              split_product, split_sum)
# The plan's own decisions, read rather than re-derived, so the two lowerings cannot drift.
from lossdsl.lower.plan import _needs_guard
from lossdsl.symbolic.counts import Count

# TF functions lossdsl defines itself (a path under `lossdsl.` in OPS): the module gets a copy.
_OWN_FUNCTIONS = {op.tf: op.tf.rpartition(".")[2] for op in OPS
                  if op.tf is not None and op.tf.startswith("lossdsl.")}

# Names the generated `call` uses; a parameter's local variable is renamed off them.
_RESERVED = {"self", "tf", "keras", "dtype", "shape", "rank", "y_true", "y_pred", "config",
             "name", "reduction", "align_ranks", *_OWN_FUNCTIONS.values()}

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
    "_broadcast_against": '''

def _broadcast_against(value, others):
    """`value` broadcast to the common shape of itself and `others` (not every TF op broadcasts it)."""
    shape = tf.shape(value)
    for other in others:
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(other))
    return tf.broadcast_to(value, shape)
''',
    "_step": '''

def _step(x, at_zero):
    """Heaviside step: 1 above 0, 0 below, `at_zero` at 0 (TF's gradient at kinks)."""
    middle = tf.fill(tf.shape(x), tf.cast(at_zero, x.dtype))
    return tf.where(x > 0, tf.ones_like(x), tf.where(x < 0, tf.zeros_like(x), middle))
''',
}

_PER_SAMPLE = '''

def _output_axes(rank, reduced):
    """The axes the per-sample loss drops: those every reduction of the loss reduced.

    `reduced` is None when the loss varies along every axis, else the axis specs of its reductions.
    """
    if reduced is None:
        return []
    return sorted(set(range(1, rank)).intersection(*(_axes(rank, axis) for axis in reduced)))


def _per_sample(value, shape, rank, reduced):
    """The per-sample loss: `value` without the axes of `_output_axes`."""
    axes = _output_axes(rank, reduced)
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
        # The expression compile lowers: reductions fused (parameters stay symbols here).
        self.output, self.table = fuse_reductions(analysis.expression, analysis.table)
        self.helpers: set[str] = set()
        self.functions: dict[str, str] = {}  # copied lossdsl TF functions: name -> dotted path
        taken = _RESERVED | set(analysis.parameters)
        self.fresh = (f"t{i}" for i in count() if f"t{i}" not in taken)
        self.locals: dict[sympy.Symbol, str] = {}
        for name, symbol in analysis.parameters.items():
            local = name
            while local in _RESERVED or local in self.locals.values():
                local += "_"
            self.locals[symbol] = local
        self.reduced = self.reduced_axes(self.output)

    def text(self) -> str:
        body = self.call_body()
        helpers = "".join(_HELPERS[name] for name in _HELPERS if name in self.helpers)
        functions = "".join(_function_source(path) for path in self.functions.values())
        return "".join([self.docstring(), "\nimport keras\nimport tensorflow as tf\n",
                        _function_source("lossdsl.keras.loss.align_ranks"), helpers, functions,
                        _PER_SAMPLE, "\n\n", self.klass(body)])

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
        lines += [f"{local} = tf.constant(self.{symbol.name}, dtype)"
                  for symbol, local in self.locals.items()]
        names: dict[sympy.Basic, str] = {}
        self.write_plan(build_plan([self.output], self.table), names, lines)
        self.helpers.add("_axes")
        lines.append(f"return _per_sample({names[self.output]}, shape, rank, {self.reduced})")
        return lines

    def write_plan(self, nodes: list, names: dict[sympy.Basic, str], lines: list[str]) -> None:
        """Append a line per node of a plan; ``names`` holds the code naming each value."""
        for node in nodes:
            expr = node.expr
            if expr in names:  # a leaf given to a guarded branch
                continue
            if isinstance(expr, sympy.Piecewise) and _needs_guard(expr):  # as tf_lower._node
                names[expr] = self.guarded_where(expr, [names[c] for c in node.children],
                                                 node.children, lines)
                continue
            code = self.emit(expr, [names[c] for c in node.children])
            if _is_inline(expr, self.table):
                names[expr] = code
            else:
                names[expr] = self.line(lines, code, _comment(expr))

    def line(self, lines: list[str], code: str, comment: str) -> str:
        """Append ``tN = code`` and return ``tN``."""
        name = next(self.fresh)
        lines.append(f"{name} = {code}  # {comment}")
        return name

    def guarded_where(self, expr: sympy.Piecewise, args: list[str],
                      children: tuple[sympy.Basic, ...], lines: list[str]) -> str:
        """The "double where" of ``tf_lower._guarded_piecewise_node``, written out.

        Each branch is computed from its leaves with the gradient cut where the
        branch is not taken, so an untaken branch's NaN/Inf derivative never
        reaches the inputs (TF issue #38349). The children are the conditions,
        then the leaves, as the plan orders them.
        """
        conditions = [cond for _, cond in expr.args if cond is not sympy.true]
        has_default = expr.args[-1].cond is sympy.true
        leaves = children[len(conditions):]
        outer = dict(zip(children, args))
        taken_by, none_before = [], None
        for condition in args[:len(conditions)]:
            taken_by.append(condition if none_before is None else self.line(
                lines, f"tf.math.logical_and({condition}, {none_before})", "this branch is taken"))
            negated = f"tf.math.logical_not({condition})"
            none_before = self.line(lines, negated if none_before is None else
                                    f"tf.math.logical_and({none_before}, {negated})",
                                    "no branch so far is taken")
        if has_default:
            taken_by.append(none_before)
        branches = []
        for (value, _), taken in zip(expr.args, taken_by):
            given = {}
            for leaf in (leaf for leaf in leaves if leaf in value.free_symbols):
                # Counts and parameters are constants to the tape (compile has numbers there).
                keep = isinstance(leaf, Count) or leaf in self.locals
                given[leaf] = outer[leaf] if keep else self.line(
                    lines, f"tf.where({taken}, {outer[leaf]}, tf.stop_gradient({outer[leaf]}))",
                    f"{leaf}, differentiated only where this branch is taken")
            self.write_plan(build_plan([value], self.table, leaves=frozenset(leaves)), given, lines)
            branches.append(given[value])
        result = branches[-1] if has_default else 'tf.constant(float("nan"), dtype)'
        for condition, branch in reversed(list(zip(args[:len(conditions)], branches))):
            result = f"tf.where({condition}, {branch}, {result})"
        return self.line(lines, result, _comment(expr))

    def reduced_axes(self, output: sympy.Expr) -> str:
        """The ``reduced`` argument of ``_per_sample``, as ``_Context.output_axes`` decides."""
        free = output.free_symbols
        if free & self.table.inputs or varies_by_position(output):
            return "None"
        axes = sorted({self.table[s].axis for s in free if s in self.table}, key=repr)
        return repr(axes)

    def emit(self, expr: sympy.Basic, args: list[str]) -> str:
        """Python code for one node, given the code naming each of its children."""
        if expr in self.table:
            return self.reduction(expr, args[0])
        if isinstance(expr, sympy.Symbol):
            return self.symbol(expr)
        if expr is sympy.true or expr is sympy.false:
            return f"tf.constant({bool(expr)})"
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
                               f"{type(expr).__name__} ({expr}). Please report this with the "
                               "source that produced it.")
        return self.call(op.tf, op.by_position, expr, args)

    def call(self, path: str, by_position: bool, expr: sympy.Basic, args: list[str]) -> str:
        """A function of OPS, its arguments shaped as ``tf_lower._node`` shapes them."""
        function = f"tf.{path}"
        if path in _OWN_FUNCTIONS:
            function = _OWN_FUNCTIONS[path]
            self.functions[function] = path
        if by_position:  # its value depends on where each element sits: the full shape
            args = [f"tf.broadcast_to({arg}, shape)" for arg in args]
        elif len(args) > 1 and not expr.args[0].free_symbols & self.table.inputs:
            # Not every TF function broadcasts its first argument (clip_by_value(2, lo, hi));
            # one of an input is already full-shape.
            self.helpers.add("_broadcast_against")
            args = [f"_broadcast_against({args[0]}, [{', '.join(args[1:])}])", *args[1:]]
        return f"{function}({', '.join(args)})"

    def symbol(self, symbol: sympy.Symbol) -> str:
        if symbol in self.table.inputs:
            return symbol.name
        if symbol in self.locals:
            return self.locals[symbol]
        if isinstance(symbol, Count) and symbol.axis == "output":
            self.helpers.update({"_axes", "_count"})
            return f"_count(shape, _output_axes(rank, {self.reduced}), dtype)"
        if isinstance(symbol, Count):
            self.helpers.update({"_axes", "_count"})
            return f"_count(shape, _axes(rank, {symbol.axis!r}), dtype)"
        raise LossDSLError(f"Internal error: cannot export the symbol `{symbol}`. Please report "
                           "this with the source that produced it.")

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

    def ite(self, expr: sympy.ITE, args: list[str]) -> str:
        return f"tf.where({', '.join(args)})"


_INTERNAL = {sympy.Add: "add", sympy.Mul: "mul", sympy.Pow: "pow",
             sympy.Piecewise: "piecewise", sympy.Heaviside: "heaviside", sympy.ITE: "ite"}
_SPECIAL = {sympy.oo: 'float("inf")', -sympy.oo: 'float("-inf")',
            sympy.zoo: 'float("inf")', sympy.nan: 'float("nan")'}


def _is_inline(expr: sympy.Basic, table: ReductionTable) -> bool:
    """Leaves (inputs, parameters, numbers) are written in place, not named."""
    if isinstance(expr, sympy.Symbol):
        return expr not in table and not isinstance(expr, Count)
    return expr.is_Number or expr in _SPECIAL or isinstance(expr, sympy.NumberSymbol)


def _fold(path: str, args: list[str]) -> str:
    result = args[0]
    for arg in args[1:]:
        result = f"tf.{path}({result}, {arg})"
    return result


def _function_source(dotted: str) -> str:
    """A function of a lossdsl module (``"lossdsl.keras.loss.align_ranks"``), copied from its file.

    Read, not imported: importing those modules would load TF. Its type hints are
    dropped: they may name types the generated module does not define.
    """
    module, _, name = dotted.rpartition(".")
    package_root = Path(__file__).resolve().parents[2]  # the directory holding lossdsl/
    text = (package_root / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            node.returns = None
            for argument in ast.walk(node.args):
                if isinstance(argument, ast.arg):
                    argument.annotation = None
            return "\n\n" + ast.unparse(node) + "\n"
    raise LossDSLError(f"Internal error: {name} not found in {module}.")


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
