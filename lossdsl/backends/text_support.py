"""What printed plans need around their lines: helper functions, copied lossdsl functions.

The helpers are TF source text the printed code calls (:data:`HELPERS`); the shape
rule is not rewritten here but copied from :mod:`lossdsl.lower.shapes` by reading
its source (:func:`function_source`), as are TF functions lossdsl defines itself
(``one_hot``'s). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from lossdsl.errors import LossDSLError

# Functions lossdsl defines that the printed code calls: copied into the module.
SHAPE_FUNCTIONS = {"sample_axes": "lossdsl.lower.shapes.sample_axes",
                   "output_axes": "lossdsl.lower.shapes.output_axes"}

# Helpers the printed code may call, by name, with the helpers they call in turn.
HELPERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "_count": ('''

def _count(shape, axes, dtype):
    """How many elements a reduction over `axes` reduces."""
    sizes = tf.gather(shape, axes) if axes else tf.ones([1], "int32")
    return tf.cast(tf.reduce_prod(sizes), dtype)
''', ()),
    "_broadcast_against": ('''

def _broadcast_against(value, others):
    """`value` broadcast to the common shape of itself and `others` (not every TF op broadcasts it)."""
    shape = tf.shape(value)
    for other in others:
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(other))
    return tf.broadcast_to(value, shape)
''', ()),
    "_step": ('''

def _step(x, at_zero):
    """Heaviside step: 1 above 0, 0 below, `at_zero` at 0 (TF's gradient at kinks)."""
    middle = tf.fill(tf.shape(x), tf.cast(at_zero, x.dtype))
    return tf.where(x > 0, tf.ones_like(x), tf.where(x < 0, tf.zeros_like(x), middle))
''', ()),
    "_per_sample": ('''

def _per_sample(value, shape, rank, reduced):
    """The per-sample loss: `value` without the axes of `output_axes`."""
    axes = output_axes(rank, reduced)
    if not axes:
        return tf.broadcast_to(value, shape)
    if value.shape.rank == rank:  # constant along `axes` (maybe full size there): one copy
        value = value[tuple(slice(0, 1) if a in axes else slice(None) for a in range(rank))]
    keep = tf.tensor_scatter_nd_update(shape, [[a] for a in axes],
                                       tf.ones([len(axes)], shape.dtype))
    return tf.squeeze(tf.broadcast_to(value, keep), axis=axes)
''', ("output_axes",)),
    "output_axes": ("", ("sample_axes",)),
    "sample_axes": ("", ()),
}
NAMES = frozenset(HELPERS) | {"tf", "dtype", "shape", "rank"}
"""Names the printed code uses; a plan's parameters must be named off them."""

@dataclass
class Printed:
    """A printed plan: its lines, the code of each output, and what the code needs.

    Attributes:
        lines: the statements, in order.
        outputs: output name -> the code of its finished value.
        helpers: names of :data:`HELPERS` the code calls (with what they call).
        functions: copied lossdsl TF functions, name -> dotted path.
    """

    lines: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    helpers: set[str] = field(default_factory=set)
    functions: dict[str, str] = field(default_factory=dict)

    def support(self) -> str:
        """The source of every helper and copied function the lines call, each once."""
        needed, pending = set(), list(self.helpers)
        while pending:
            name = pending.pop()
            if name not in needed:
                needed.add(name)
                pending.extend(HELPERS[name][1])
        text = "".join(function_source(path) for name, path in SHAPE_FUNCTIONS.items()
                       if name in needed)
        text += "".join(HELPERS[name][0] for name in HELPERS if name in needed)
        return text + "".join(function_source(path) for path in self.functions.values())


_RUNNER_ONLY = frozenset({"pair_rows", "assert_fits_pair_rows"})


def pair_support_names(module: str) -> tuple[str, ...]:
    """Everything a module of pair functions defines at its top level, in order (constants and
    functions: they call each other), but those only the runner uses (:data:`_RUNNER_ONLY`)."""
    text = _module_text(module)
    names = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name not in _RUNNER_ONLY:
            names.append(node.name)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and \
                node.targets[0].id.isupper() and node.targets[0].id != "__all__":
            names.append(node.targets[0].id)
    return tuple(names)


def _module_text(module: str) -> str:
    package_root = Path(__file__).resolve().parents[2]  # the directory holding lossdsl/
    return (package_root / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")


def function_source(dotted: str) -> str:
    """A function of a lossdsl module (``"lossdsl.backends.tensorflow.ranks.align_ranks"``), copied from its file.

    Read, not imported: importing those modules would load TF. Its type hints are
    dropped: they may name types the generated module does not define.
    """
    module, _, name = dotted.rpartition(".")
    text = _module_text(module)
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets
                                             if isinstance(t, ast.Name)] == [name]:
            return "\n" + ast.unparse(node) + "\n"  # a constant the copied functions read
        if isinstance(node, ast.FunctionDef) and node.name == name:
            node.returns = None
            for argument in ast.walk(node.args):
                if isinstance(argument, ast.arg):
                    argument.annotation = None
            return "\n\n" + ast.unparse(node) + "\n"
    raise LossDSLError(f"Internal error: {name} not found in {module}.")


__all__ = ["SHAPE_FUNCTIONS", "HELPERS", "NAMES", "Printed", "function_source", "pair_support_names"]
