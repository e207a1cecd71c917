"""Hypothesis strategies for lossdsl sources, and an independent NumPy interpreter of the IR.

The generator draws functions from :data:`lossdsl.ops.OPS`, so a new row is
generated automatically, and columns ``x[..., k]`` of any subexpression with ``k``
in range for :data:`SHAPE` (negative too); only functions with a restricted domain need an
entry in :data:`DOMAINS` (a test checks it against the rows' ``domain`` column).
The interpreter is written here from the README's semantics (every
subexpression full-shape, reductions broadcast back as with ``keepdims``), not
from lossdsl's SymPy, NumPy or TF code, so it can disagree; its forms
(:data:`REFERENCE_FORMS`) are keyed by the rows of OPS, and a test fails when a
row has none.
"""

from __future__ import annotations

import math
import re
import typing

import numpy as np
from hypothesis import strategies as st

from lossdsl.language import ir
from lossdsl.ops import OPS, REGISTRY

PARAMETERS = ("alpha", "beta")
SHAPE = (2, 3, 4)  # batch, then two sample axes of distinct sizes
AXES = (None, (1,), (2,), (-1,), (-2,), (1, 2))
BATCH_AXES = ((0,), (0, 1), (0, 2), (0, 1, 2), (0, -1))  # with the batch axis: batch statistics
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
NUMBERS = ("2", "0.5", ".25", "3", "1e-3", "1.5", "0.1")
COLUMNS = range(-SHAPE[-1], SHAPE[-1])  # x[..., k]: every valid k for SHAPE's last axis

# Per-op domains: which argument positions must be positive (all others: any value).
DOMAINS: dict[str, tuple[int, ...]] = {
    "log": (0,), "sqrt": (0,), "log1p": (0,), "xlogy": (1,), "xdivy": (1,), "xlog1py": (1,),
    "log2": (0,), "log10": (0,), "lgamma": (0,), "pow": (0,),
}


def _leaf(draw, names: tuple[str, ...]) -> ir.Expr:
    if draw(st.booleans()):
        return ir.Number(draw(st.sampled_from(NUMBERS)))
    return ir.Name(draw(st.sampled_from(("y_true", "y_pred") + PARAMETERS + names)))


def _positive(draw, names: tuple[str, ...], depth: int) -> ir.Expr:
    """An expression that is > 0 for inputs in (0, 1) and positive parameters."""
    how = draw(st.sampled_from(("number", "input", "exp", "sigmoid", "square+", "column")))
    if how == "column" and depth > 0:  # a column of a positive expression is positive
        return ir.Column(_positive(draw, names, depth - 1), draw(st.sampled_from(COLUMNS)))
    if how in ("number", "column"):
        return ir.Number(draw(st.sampled_from(NUMBERS)))
    if how == "input":
        return ir.Name(draw(st.sampled_from(("y_true", "y_pred"))))
    inner = _expr(draw, names, depth - 1)
    if how == "square+":
        return ir.Binary("+", ir.Call("square", (inner,)), ir.Number("0.5"))
    return ir.Call(how, (inner,))


def _compare(draw, names: tuple[str, ...], depth: int, left: ir.Expr) -> ir.Compare:
    return ir.Compare(draw(st.sampled_from(COMPARISONS)), left, _expr(draw, names, depth - 1))


def _condition(draw, names: tuple[str, ...], depth: int) -> ir.Expr:
    """A where condition: mostly one comparison; else a chain, and/or of two, or not."""
    how = draw(st.sampled_from(("compare",) * 5 + ("chain", "and", "or", "not")))
    first = _compare(draw, names, depth, _expr(draw, names, depth - 1))
    if how == "compare":
        return first
    if how == "chain":  # a < b < c: the parser's IR of it, b shared (printed back as a chain)
        return ir.Logic("and", first, _compare(draw, names, depth, first.right))
    if how == "not":
        return ir.Not(first)
    second = _compare(draw, names, depth, _expr(draw, names, depth - 1))
    return ir.Logic(how, first, second)


# Pair functions take an input as given and make (batch, batch) rows: drawn by pair_programs.
PER_SAMPLE_OPS = tuple(op for op in OPS if op.kind != "pairwise")


def _call(draw, names: tuple[str, ...], depth: int) -> ir.Call:
    op = draw(st.sampled_from(PER_SAMPLE_OPS))
    restricted = DOMAINS.get(op.name, ())
    args = [_positive(draw, names, depth) if i in restricted else _expr(draw, names, depth - 1)
            for i in range(op.arity)]
    if op.name == "where":
        args[0] = _condition(draw, names, depth)
    if op.name == "one_hot":  # a class index: an integer, not a real that rounds near one
        args[0] = ir.Number(str(draw(st.integers(0, SHAPE[-1]))))
    axis = None
    if op.kind == "reduction":
        axis = draw(st.sampled_from(AXES))
    elif op.kind == "normalizer":
        axis = draw(st.sampled_from(AXES[1:]))
    return ir.Call(op.name, tuple(args), axis)


def _expr(draw, names: tuple[str, ...], depth: int) -> ir.Expr:
    if depth <= 0 or draw(st.integers(0, 4)) == 0:
        return _leaf(draw, names)
    kind = draw(st.sampled_from(("call", "call", "call", "+-*", "/", "^", "neg", "column")))
    if kind == "call":
        return _call(draw, names, depth)
    if kind == "column":
        return ir.Column(_expr(draw, names, depth - 1), draw(st.sampled_from(COLUMNS)))
    if kind == "+-*":
        return ir.Binary(draw(st.sampled_from("+-*")), _expr(draw, names, depth - 1),
                         _expr(draw, names, depth - 1))
    if kind == "/":
        return ir.Binary("/", _expr(draw, names, depth - 1), _positive(draw, names, depth))
    if kind == "^":
        exponent = ir.Number(draw(st.sampled_from(("2", "3", "0.5", "1.5"))))
        if draw(st.booleans()):
            exponent = ir.Negate(exponent)
        return ir.Binary("^", _positive(draw, names, depth), exponent)
    return ir.Negate(_expr(draw, names, depth - 1))


@st.composite
def expressions(draw, names: tuple[str, ...] = (), depth: int = 4) -> ir.Expr:
    """Random expression trees over every function of OPS, arithmetic, powers, where and
    columns ``x[..., k]`` (valid for inputs of :data:`SHAPE`)."""
    return _expr(draw, names, depth)


@st.composite
def programs(draw, depth: int = 4) -> ir.Program:
    """A program: parameter defaults, maybe a local binding, then a body that may use it."""
    bindings = [ir.Binding(name, ir.Number(draw(st.sampled_from(("0.5", "2", "1.5")))))
                for name in PARAMETERS]
    local: tuple[str, ...] = ()
    if draw(st.booleans()):
        bindings.append(ir.Binding("p", draw(expressions((), depth - 1))))
        local = ("p",)
    return ir.Program(tuple(bindings), draw(expressions(local, depth)))


@st.composite
def batch_programs(draw, depth: int = 2) -> ir.Program:
    """A program with a statistic of the batch (:data:`BATCH_AXES`): around its body, or
    combined with it (a per-sample part and a batch part in one line)."""
    program = draw(programs(depth))
    kind = draw(st.sampled_from(["mean", "sum", "max", "logsumexp", "var"]))
    inner = draw(st.sampled_from([program.body, ir.Name("y_pred"),
                                  ir.Binary("*", ir.Name("y_true"), ir.Name("y_pred"))]))
    statistic = ir.Call(kind, (inner,), draw(st.sampled_from(BATCH_AXES)))
    body = statistic if draw(st.booleans()) else ir.Binary(
        draw(st.sampled_from("+-*")), program.body, statistic)
    return ir.Program(program.bindings, body)


PAIR_LOCALS = (("d", "pair_dist", "y_pred"), ("s", "pair_cos", "y_pred"),
               ("q", "pair_sqdist", "y_pred"), ("k", "pair_dot", "y_pred"),
               ("m", "pair_eq", "y_true"), ("e", "pair_self", None))
"""Every pair function, bound to a name a pair program may use."""


@st.composite
def pair_programs(draw, depth: int = 3) -> ir.Program:
    """A program over the pair functions' (batch, batch) rows (:data:`PAIR_LOCALS`), inputs and
    parameters, reduced over the other samples (``axis=-1``) or not. For inputs of shape
    (batch, 1) labels and (batch, batch) predictions, with batch = SHAPE[-1] (columns in range)."""
    bindings = [ir.Binding(name, ir.Number(draw(st.sampled_from(("0.5", "2", "1.5")))))
                for name in PARAMETERS]
    bindings += [ir.Binding(name, ir.Call(function, (ir.Name(arg),) if arg else ()))
                 for name, function, arg in PAIR_LOCALS]
    body = _expr(draw, tuple(name for name, _, _ in PAIR_LOCALS), depth)
    kind = draw(st.sampled_from(["mean", "sum", "max", "min", "logsumexp", None]))
    if kind is not None:
        body = ir.Call(kind, (body,), (-1,))
    return ir.Program(tuple(bindings), body)


TRIPLE_LOCALS = tuple((name + "p", function, arg) for name, function, arg in PAIR_LOCALS)
"""Every pair function along ``axis=-2`` (the first other sample j of a triple (a, j, k)),
bound to a name a triple program may use next to :data:`PAIR_LOCALS` (along k)."""
TRIPLE_AXES = ((-1,), (-2,), (-2, -1), (-1, -2), (0,), None)
"""A triple's reductions: along k, along j, both, the batch axis a, and every sample axis."""


def _pair_binding(name: str, function: str, arg: str | None, axis: tuple[int, ...] | None
                  ) -> ir.Binding:
    return ir.Binding(name, ir.Call(function, (ir.Name(arg),) if arg else (), axis))


@st.composite
def triple_programs(draw, depth: int = 3) -> ir.Program:
    """A program over the triples (a, j, k) of the batch: the pair functions along j
    (``axis=-2``, :data:`TRIPLE_LOCALS`) and along k (:data:`PAIR_LOCALS`), inputs and
    parameters combined elementwise, then reduced over k, j, both, the batch or every sample
    axis (:data:`TRIPLE_AXES`), or not, maybe twice (``max(..., axis=-1)`` inside, ``sum``
    over j around it). Always reads a pair function along j (so each sample's rows are
    (batch, batch)) and one along k.
    For inputs of one number per sample (labels (batch, 1) or (batch,)), with batch =
    SHAPE[-1] (columns in range)."""
    bindings = [ir.Binding(name, ir.Number(draw(st.sampled_from(("0.5", "2", "1.5")))))
                for name in PARAMETERS]
    bindings += [_pair_binding(name, function, arg, None) for name, function, arg in PAIR_LOCALS]
    bindings += [_pair_binding(name, function, arg, (-2,))
                 for name, function, arg in TRIPLE_LOCALS]
    names = tuple(name for name, _, _ in PAIR_LOCALS + TRIPLE_LOCALS)
    body = _expr(draw, names, depth)
    for group in (TRIPLE_LOCALS, PAIR_LOCALS):  # along j (a triple, not pairs) and along k
        group = tuple(name for name, _, _ in group)
        if not any(isinstance(node, ir.Name) and node.id in group
                   for node in _walk(ir.Program((), body))):
            body = ir.Binary(draw(st.sampled_from("+-*")), body,
                             ir.Name(draw(st.sampled_from(group))))
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["mean", "sum", "max", "min", "logsumexp"]))
        body = ir.Call(kind, (body,), draw(st.sampled_from(TRIPLE_AXES)))
        if draw(st.booleans()):  # combined with a pair function after the reduction
            body = ir.Binary(draw(st.sampled_from("+-*")), body,
                             ir.Name(draw(st.sampled_from(names))))
    return ir.Program(tuple(bindings), body)


# ---------------------------------------------------------------- near misses

_TOKEN = re.compile(r"\.\.\.|\*\*|==|!=|<=|>=|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+|[A-Za-z_]\w*|\S")


def tokens(source: str) -> list[str]:
    return _TOKEN.findall(source)


@st.composite
def near_misses(draw, depth: int = 4) -> str:
    """A valid source with one token dropped, doubled or swapped with its neighbour."""
    words = tokens(str(draw(programs(depth))))
    index = draw(st.integers(0, len(words) - 1))
    how = draw(st.sampled_from(("drop", "double", "swap")))
    if how == "drop":
        del words[index]
    elif how == "double":
        words.insert(index, words[index])
    elif index + 1 < len(words):
        words[index], words[index + 1] = words[index + 1], words[index]
    return " ".join(words)


DSL_ALPHABET = "y_predtrumanxlogsqcf()+-*/^,;=<>!.0123456789e# \n\tαx[]:"
# Words the alphabet above cannot spell by chance, for the near-miss and keyword fuzzing.
DSL_WORDS = ("and", "or", "not", "pi", "e", "if", "else", "pow", "np.log", "&&", "||")


# Subscripts the language refuses when the loss is compiled (ranges, other axes, indices
# that are not integer literals, malformed lists), each after some atom of a valid source.
BAD_SUBSCRIPTS = (
    "[0]", "[-1]", "[:, 0]", "[0, ...]", "[..., 0:2]", "[..., :]", "[..., 1:]", "[..., ::2]",
    "[..., alpha]", "[..., y_pred]", "[..., 1.5]", "[..., 1e0]", "[..., --1]", "[..., 2 + 1]",
    "[..., 2^1]", "[..., (1, 2)]", "[..., ...]", "[..., 0, 1]", "[...]", "[]", "[..., ]",
    "[..., 0", "..., 0]", "[..., mean(y_pred)]", "[..., y_pred[..., 0]]", "[... 0]", "[.., 0]",
    "[..., 0][1]", "[..., where(y_pred > 0, 1, 0)]", "[..., -alpha]", "[,]", "[:]",
)


@st.composite
def bad_subscripts(draw, depth: int = 3) -> str:
    """A valid source with a refused subscript (:data:`BAD_SUBSCRIPTS`) after one of its
    atoms (a name, a number or a closing bracket): it must fail to compile, located."""
    words = tokens(str(draw(programs(depth))))
    atoms = [i for i, word in enumerate(words) if word == ")" or word[0].isalnum()
             or word[0] in "._"]
    index = draw(st.sampled_from(atoms))
    words.insert(index + 1, draw(st.sampled_from(BAD_SUBSCRIPTS)))
    return " ".join(words)


def columns_in(program: ir.Program) -> list[int]:
    """The indices of the program's columns ``x[..., k]``, bindings first, as written."""
    found: list[int] = []

    def walk(node: ir.Expr) -> None:
        if isinstance(node, ir.Column):
            found.append(node.index)
        for child in ir.children(node):
            walk(child)

    for binding in program.bindings:
        walk(binding.value)
    walk(program.body)
    return found


# ---------------------------------------------------------------- NumPy interpreter

def _logsumexp(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    top = np.max(x, axis=axes, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.sum(np.exp(x - top), axis=axes, keepdims=True)) + top


# Reductions and normalizers: (x at full shape, axes) -> keepdims result.
REDUCE: dict[str, object] = {
    "mean": lambda x, axes: np.mean(x, axis=axes, keepdims=True),
    "sum": lambda x, axes: np.sum(x, axis=axes, keepdims=True),
    "max": lambda x, axes: np.max(x, axis=axes, keepdims=True),
    "min": lambda x, axes: np.min(x, axis=axes, keepdims=True),
    "logsumexp": _logsumexp,
    "prod": lambda x, axes: np.prod(x, axis=axes, keepdims=True),
    "var": lambda x, axes: np.var(x, axis=axes, keepdims=True),  # ddof=0, as the README says
    "std": lambda x, axes: np.std(x, axis=axes, keepdims=True),
    "norm": lambda x, axes: np.sqrt(np.sum(x * x, axis=axes, keepdims=True)),
}
NORMALIZE: dict[str, object] = {
    "softmax": lambda x, axes: np.exp(x - _logsumexp(x, axes)),
    "log_softmax": lambda x, axes: x - _logsumexp(x, axes),
}


def _reduce(kind: str, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return REDUCE[kind](x, axes)


def _xlogy(x, y):
    with np.errstate(all="ignore"):
        return np.where(x == 0, 0.0, x * np.log(y))


def _xlog1py(x, y):
    with np.errstate(all="ignore"):
        return np.where(x == 0, 0.0, x * np.log1p(y))


def _one_hot(k):
    """1 where the element's index along the last axis equals k there (k at full shape)."""
    return (k == np.arange(k.shape[-1])).astype(np.float64)


def _elementwise(scalar):
    """A function of one float (the standard library's erf, lgamma) over arrays."""
    def apply(x):
        x = np.asarray(x, np.float64)
        return np.vectorize(scalar, otypes=[np.float64])(x) if x.ndim else np.float64(scalar(x))
    return apply


def _lgamma(x: float) -> float:
    """log(gamma(x)): the README defines it for x > 0 (+oo at 0, no real value below)."""
    return math.lgamma(x) if x > 0 else math.inf if x == 0 else math.nan


def _xdivy(x, y):
    with np.errstate(all="ignore"):
        return np.where(x == 0, 0.0, x / y)


NUMPY: dict[str, object] = {
    "abs": np.abs, "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
    "sqrt": np.sqrt, "square": np.square, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "cosh": np.cosh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softplus": lambda x: np.logaddexp(0.0, x), "relu": lambda x: np.maximum(x, 0.0),
    "sign": np.sign, "maximum": np.maximum, "minimum": np.minimum,
    # As the README defines it (and TF computes it): lo where lo > hi.
    "clip": lambda x, lo, hi: np.maximum(np.minimum(x, hi), lo),
    "where": np.where, "xlogy": _xlogy, "xdivy": _xdivy, "xlog1py": _xlog1py,
    "one_hot": _one_hot,
    "log2": np.log2, "log10": np.log10, "pow": np.power, "sinh": np.sinh,
    "erf": _elementwise(math.erf), "erfc": _elementwise(math.erfc),
    "lgamma": _elementwise(_lgamma), "stop_gradient": lambda x: x,
}
def _rows(x: np.ndarray) -> np.ndarray:
    return np.reshape(x, (len(x), -1))


def _pair_sqdist(x: np.ndarray) -> np.ndarray:
    v = _rows(x)
    return np.array([[float(np.sum((a - b) ** 2)) for b in v] for a in v])


def _pair_cos(x: np.ndarray) -> np.ndarray:
    # The README: vectors l2-normalised as tf.math.l2_normalize (norms below 1e-6 count as 1e-6).
    v = _rows(x)
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-6)
    return np.array([[float(np.dot(a, b)) for b in unit] for a in unit])


# Pair functions: (batch, batch), row i against every sample j, written from the README.
PAIRS: dict[str, object] = {
    "pair_dot": lambda x: np.array([[float(np.dot(a, b)) for b in _rows(x)] for a in _rows(x)]),
    "pair_cos": _pair_cos, "pair_sqdist": _pair_sqdist,
    "pair_dist": lambda x: np.sqrt(_pair_sqdist(x)),
    "pair_eq": lambda x: np.array([[float(np.array_equal(a, b)) for b in _rows(x)]
                                   for a in _rows(x)]),
    "pair_self": lambda batch: np.eye(batch),
}
# The reference forms by the kind of row they serve; every row of OPS has one, and no
# entry names a function OPS lacks (tests/test_side_tables.py checks both).
REFERENCE_FORMS: dict[str, dict[str, object]] = {
    "elementwise": NUMPY, "reduction": REDUCE, "normalizer": NORMALIZE, "pairwise": PAIRS}


def rows_without_a_reference_form() -> list[str]:
    """The rows of OPS this interpreter cannot evaluate, and the entries that are no row."""
    missing = [op.name for op in OPS if op.name not in REFERENCE_FORMS[op.kind]]
    stray = [f"{name} (not a {kind} row)" for kind, forms in REFERENCE_FORMS.items()
             for name in forms if name not in REGISTRY or REGISTRY[name].kind != kind]
    return missing + stray


_COMPARE = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
            ">": np.greater, ">=": np.greater_equal}


class NumpyInterpreter:
    """Evaluates IR at full shape in float64: reductions keep their dims and broadcast back."""

    def __init__(self, program: ir.Program, y_true: np.ndarray, y_pred: np.ndarray,
                 params: dict[str, float]) -> None:
        self.given = {"y_true": y_true, "y_pred": y_pred}
        calls = [node for node in _walk(program)
                 if isinstance(node, ir.Call) and REGISTRY[node.function].kind == "pairwise"]
        # A pair function along axis=-2 makes triples: each sample's rows are (batch, batch).
        self.triples = any(node.axis == (-2,) for node in calls)
        # With pair functions every value is a row over the batch: (batch, batch), or over
        # the triples (a, j, k) of the batch: (batch, batch, batch).
        self.shape = (len(y_pred),) * (3 if self.triples else 2) if calls else \
            np.broadcast_shapes(y_true.shape, y_pred.shape)
        self.rank = len(self.shape)
        if calls:  # one number per sample is a column next to (batch, batch) rows,
            # (batch, 1, 1) next to a triple's (batch, batch, batch)
            y_true, y_pred = (np.reshape(y, y.shape + (1,) * (self.rank - y.ndim))
                              for y in (y_true, y_pred))
        self.names: dict[str, np.ndarray] = {"y_true": y_true, "y_pred": y_pred}
        self.names.update({k: np.float64(v) for k, v in params.items()})
        self.program = program

    def run(self) -> np.ndarray:
        for binding in self.program.bindings:
            if binding.name not in self.names:
                self.names[binding.name] = self.eval(binding.value)
        return self.full(self.eval(self.program.body))

    def full(self, value) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, np.float64), self.shape)

    def eval(self, node: ir.Expr):
        with np.errstate(all="ignore"):
            return self._eval(node)

    def _eval(self, node: ir.Expr):
        if isinstance(node, ir.Number):
            return np.float64(node.text)
        if isinstance(node, ir.Name):
            return self.names[node.id]
        if isinstance(node, ir.Negate):
            return -self.eval(node.operand)
        if isinstance(node, ir.Compare):
            return _COMPARE[node.op](self.eval(node.left), self.eval(node.right))
        if isinstance(node, ir.Logic):
            join = np.logical_and if node.op == "and" else np.logical_or
            return join(self.eval(node.left), self.eval(node.right))
        if isinstance(node, ir.Not):
            return np.logical_not(self.eval(node.operand))
        if isinstance(node, ir.Binary):
            a, b = self.eval(node.left), self.eval(node.right)
            return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
                    "^": np.power}[node.op](a, b)
        if isinstance(node, ir.Column):  # NumPy's own slice, kept as a size-1 axis
            index = node.index % self.shape[-1]
            return self.full(self.eval(node.operand))[..., index:index + 1]
        return self._call(node)

    def _call(self, node: ir.Call):
        op = REGISTRY[node.function]
        if op.kind == "pairwise":  # of an input as given (a name bound to one included)
            if not node.args:
                value = PAIRS[op.name](self.shape[0])
            else:
                value = PAIRS[op.name](np.asarray(self.eval(node.args[0]), np.float64))
            if not self.triples:
                return value
            # Over triples (a, j, k): f(a, j) along j for axis=-2 (broadcast along k), and
            # f(a, k) along k for axis=-1 (broadcast along j).
            return value[:, :, None] if node.axis == (-2,) else value[:, None, :]
        args = [self.eval(arg) for arg in node.args]
        if op.kind == "elementwise":
            if op.by_position:  # its value depends on where each element sits
                args = [self.full(arg) for arg in args]
            return NUMPY[op.name](*args)
        return REFERENCE_FORMS[op.kind][op.name](self.full(args[0]), self.axes(node.axis))

    def axes(self, axis: tuple[int, ...] | None) -> tuple[int, ...]:
        """None: every axis of a sample; 0 is the batch axis, a negative one counts from the end."""
        if axis is None:
            return tuple(range(1, self.rank))
        return tuple(a % self.rank for a in axis)


def _walk(program: ir.Program):
    """Every node the body reads, through the bindings it names (a binding nothing reads is
    dead code: its pair functions do not make the rows)."""
    bound = {binding.name: binding.value for binding in program.bindings}
    pending, seen = [program.body], set()
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ir.Name) and node.id in bound and node.id not in seen:
            seen.add(node.id)
            pending.append(bound[node.id])
        for value in vars(node).values():
            for child in value if isinstance(value, tuple) else (value,):
                if isinstance(child, typing.get_args(ir.Expr)):
                    pending.append(child)
