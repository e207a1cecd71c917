"""The exported module is the compiled loss: same per-sample values, same tape gradients.

`lossdsl export` writes a second copy of the plan `lossdsl.compile` runs. Here that
copy, written to a file and imported (no exec of strings), is compared with
`lossdsl.compile` in float64 for every loss of the library (every option variant it
offers) and for generated programs: the per-sample loss (`reduction="none"`), the
reduced loss with and without `sample_weight`, and the tape's gradient w.r.t.
`y_pred` of each, wherever the compiled side is finite (where it is, the exported
side must be too). The exported class must also round-trip get_config/from_config.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sympy
import tensorflow as tf
from dsl_strategies import AXES as AXES_IR
from dsl_strategies import SHAPE, expressions, programs
from hypothesis import event, given, settings
from hypothesis import strategies as st

import lossdsl
from lossdsl import losses
from lossdsl.language import ir
from lossdsl.tools.export import export_source, export_to_file
from lossdsl.ops import OPS, one_hot
from lossdsl.lower.guards import needs_guard as _needs_guard
from lossdsl.symbolic.counts import Count

pytestmark = pytest.mark.timeout(900)

RTOL, ATOL = 1e-10, 1e-12
AXES = (None, -1, 1, (1, 2))
EDGES = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])


def scaled(factor: float) -> settings:
    """``factor`` times the profile's example count (100 in CI, 2,500 in the long run)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


_modules = itertools.count()


def exported_class(source: str, directory: Path, **params: float) -> type:
    """The class of the module ``export`` writes for ``source``, imported from its file."""
    number = next(_modules)
    class_name, module_name = f"Trust{number}", f"trust_export_{number}"
    path = export_to_file(source, class_name, directory / f"{module_name}.py", **params)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # keras's registration looks the class's module up
    spec.loader.exec_module(module)
    return getattr(module, class_name)


def value_and_gradient(loss, y_true: np.ndarray, y_pred: np.ndarray, **kwargs
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The loss (through Keras's ``__call__``) and the tape's gradient of its sum w.r.t. y_pred."""
    variable = tf.Variable(y_pred, dtype=tf.float64)
    with tf.GradientTape() as tape:
        value = loss(y_true, variable, **kwargs)
    gradient = tape.gradient(value, variable)
    gradient = np.zeros(y_pred.shape) if gradient is None else gradient.numpy()
    return np.asarray(value), gradient


def assert_same(got: np.ndarray, expected: np.ndarray, what: str) -> int:
    """``got`` equals ``expected`` wherever ``expected`` is finite; returns how many entries."""
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    finite = np.isfinite(expected)
    assert np.isfinite(got[finite]).all(), f"{what}: exported not finite where compile is"
    np.testing.assert_allclose(got[finite], expected[finite], rtol=RTOL, atol=ATOL, err_msg=what)
    return int(finite.sum())


def compare(source: str, directory: Path, y_true: np.ndarray, y_pred: np.ndarray,
            params: dict[str, float] | None = None, counts: Counter | None = None) -> int:
    """Export == compile on one batch; returns how many finite values were compared."""
    params, counts = params or {}, Counter() if counts is None else counts
    exported = exported_class(source, directory, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lossdsl.LossDSLWarning)
        compiled = lossdsl.compile(source, dtype="float64", reduction="none", **params)
        reduced = lossdsl.compile(source, dtype="float64", **params)
    compared = 0
    per_sample = value_and_gradient(compiled, y_true, y_pred)
    got = value_and_gradient(exported(dtype="float64", reduction="none"), y_true, y_pred)
    weights = np.random.default_rng(len(source)).uniform(0.0, 2.0, per_sample[0].shape)
    weights.flat[0] = 0.0
    compared += assert_same(got[0], per_sample[0], f"{source}: per-sample value")
    compared += assert_same(got[1], per_sample[1], f"{source}: gradient of the per-sample loss")
    loss = exported(dtype="float64")
    for ours in ({}, {"sample_weight": weights}):
        expected = value_and_gradient(reduced, y_true, y_pred, **ours)
        got = value_and_gradient(loss, y_true, y_pred, **ours)
        what = f"{source} ({'weighted' if ours else 'unweighted'})"
        compared += assert_same(got[0], expected[0], f"{what}: value")
        compared += assert_same(got[1], expected[1], f"{what}: gradient")
    config = loss.get_config()
    assert config == {"name": loss.name, "reduction": "sum_over_batch_size", "dtype": "float64",
                      **reduced.params, **params}
    again = type(loss).from_config(config)
    assert again.get_config() == config
    again_value = np.asarray(again(y_true, y_pred))
    if np.isfinite(again_value):
        np.testing.assert_allclose(again_value, value_and_gradient(loss, y_true, y_pred)[0],
                                   rtol=RTOL)
    return compared


# ---------------------------------------------------------------- the defects, one by one

def test_guarded_where_exports_the_double_where(tmp_path):
    # Was `tf.where(y_pred, t0, y_pred)`: the plan's children (conditions, then
    # leaves) read as (value, condition) pairs.
    source = "mean(where(y_pred > 0, log(y_pred), y_pred))"
    y_pred = np.array([[-1.0, 0.0, 0.5, 2.0], [0.25, -0.5, 1.0, 3.0]])
    exported = exported_class(source, tmp_path)(dtype="float64", reduction="none")
    value, gradient = value_and_gradient(exported, np.zeros_like(y_pred), y_pred)
    # By hand: log where y_pred > 0, else y_pred; d/dy = 1/y there, else 1, never NaN.
    expected = np.where(y_pred > 0, np.log(np.where(y_pred > 0, y_pred, 1.0)), y_pred)
    np.testing.assert_allclose(value, expected.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(gradient, np.where(y_pred > 0, 1 / np.where(y_pred > 0, y_pred, 1),
                                                  1.0) / 4, rtol=1e-14)
    assert compare(source, tmp_path, np.zeros_like(y_pred), y_pred) > 0


def test_one_hot_is_written_into_the_module_and_matches_keras(tmp_path):
    # Was `tf.lossdsl.lower.plan.one_hot_last_axis(...)`: not a TF function.
    source = losses.REGISTRY["sparse_categorical_crossentropy"].source_for(from_logits=True)
    code = export_source(source, "Sparse")
    assert "def one_hot_last_axis(positions):" in code and "lossdsl." not in code.split(
        "import keras")[1].replace("lossdsl.ops.OPS", "").replace('"lossdsl_export"', "")
    labels = np.array([0, 2, 1, 3])
    logits = np.random.default_rng(0).normal(size=(4, 4))
    loss = exported_class(source, tmp_path)(dtype="float64")
    reference = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    for got, expected in zip(value_and_gradient(loss, labels, logits),
                             value_and_gradient(reference, labels, logits)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_loss_that_varies_by_position_keeps_its_axes(tmp_path):
    # No input in the output, but one_hot varies along the last axis: compile keeps the shape.
    y_pred = np.random.default_rng(1).uniform(size=(3, 4))
    assert compare("mean(y_pred)*one_hot(1)", tmp_path, np.zeros((3, 4)), y_pred) > 0


@pytest.mark.parametrize("source", [
    "mean(clip(0.5, y_pred, 1))",  # a TF function that does not broadcast its first argument
    "mean(where(where(y_pred > 0.5, y_pred, 0) > 0.2, y_pred, 1))",  # SymPy's ITE and False
    "mean(align_ranks*(y_true - y_pred)^2)",  # a parameter named like a function of the module
])
def test_nodes_and_names_the_exporter_did_not_handle(tmp_path, source):
    rng = np.random.default_rng(2)
    params = {"align_ranks": 1.5} if "align_ranks" in source else {}
    assert compare(source, tmp_path, rng.uniform(size=(3, 4)), rng.uniform(-0.5, 1.5, (3, 4)),
                   params) > 0


@pytest.mark.parametrize("name", ["float", "super"])
def test_parameters_hiding_a_builtin_the_constructor_calls_are_refused(name):
    # Were exported, and the constructor then called the parameter: `float(float)`.
    with pytest.raises(lossdsl.DSLNameError, match=f"`{name}` cannot be used as a Python "
                                                   "parameter name"):
        export_source(f"mean({name}*(y_true - y_pred)^2)", "Shadow", **{name: 2.0})


# ---------------------------------------------------------------- every loss of the library

def _variants(spec: losses.LossSpec) -> list[dict]:
    """The default options, and each other value of from_logits/apply_class_balancing/axis."""
    choices = [[(key, value) for value in ((False, True) if isinstance(default, bool) else AXES)]
               for key, default in spec.options.items()]
    return [dict(combination) for combination in itertools.product(*choices)]


LIBRARY_CASES = [(spec.name, options) for spec in losses.available() for options in _variants(spec)]


def _inputs(source: str, shape: tuple[int, ...], edges: bool, seed: int
            ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if edges:
        y_pred = rng.choice(EDGES, shape)
        y_true = rng.choice(np.array([0.0, 0.5, 1.0]), shape)
    else:
        y_pred, y_true = rng.uniform(0.05, 0.95, shape), rng.uniform(0.0, 1.0, shape)
    if "one_hot(y_true)" in source:  # integer labels, one per position but the class axis
        y_true = rng.integers(0, shape[-1], shape[:-1]).astype("int32")
    if "pair_eq(y_true)" in source:  # class ids: two classes, so that every sample has a positive
        y_true = np.array([0, 1, 0, 1, 1] * shape[0])[:shape[0], None]
    return y_true, y_pred


def test_every_library_loss_and_variant_is_covered():
    """The cases below are every loss of the library, with each value of each of its options."""
    for spec in losses.available():
        cases = [options for name, options in LIBRARY_CASES if name == spec.name]
        assert cases, spec.name
        for key, default in spec.options.items():
            wanted = {False, True} if isinstance(default, bool) else set(AXES)
            assert {options[key] for options in cases} == wanted | {default}, (spec.name, key)


@pytest.mark.parametrize("name, options", LIBRARY_CASES,
                         ids=[f"{n}-{o}" if o else n for n, o in LIBRARY_CASES])
def test_library_loss_exports_to_the_compiled_loss(tmp_path, name, options):
    source = losses.REGISTRY[name].source_for(**options)
    compared = 0
    # Pair functions: rank 2, (batch, batch) predictions (embeddings or a similarity matrix).
    shapes = ((5, 5),) if "pair_" in source else ((5, 4), (3, 2, 4))
    for shape, edges in itertools.product(shapes, (False, True)):
        if options.get("axis") == (1, 2) and len(shape) == 2:
            continue  # no axis 2 in a batch of vectors (compile refuses it too)
        y_true, y_pred = _inputs(source, shape, edges, seed=len(shape) + 2 * edges)
        compared += compare(source, tmp_path, y_true, y_pred)
    assert compared > 0


# ---------------------------------------------------------------- generated programs

_REDUCTIONS = tuple(op.name for op in OPS if op.kind == "reduction")
# A function and the bound above which it is defined: its `where` branch blows up below.
_RISKY = (("log", "0"), ("sqrt", "0"), ("log1p", "-1"))


@st.composite
def plan_programs(draw) -> ir.Program:
    """``programs()``, a quarter as drawn, the others with the body wrapped in a guarded
    ``where``, a reduction or a ``one_hot`` product, which ``programs()`` alone seldom
    draws in the first hundreds of (derandomized) examples."""
    program = draw(programs())
    body, how = program.body, draw(st.sampled_from(("as drawn", "where", "reduction", "one_hot")))
    if how == "where":
        function, bound = draw(st.sampled_from(_RISKY))
        other = draw(expressions(tuple(b.name for b in program.bindings), depth=2))
        body = ir.Call("where", (ir.Compare(">", body, ir.Number(bound)),
                                 ir.Call(function, (body,)), other))
    elif how == "reduction":
        body = ir.Call(draw(st.sampled_from(_REDUCTIONS)), (body,), draw(st.sampled_from(AXES_IR)))
    elif how == "one_hot":
        label = draw(st.sampled_from((ir.Number("0"), ir.Number("2"), ir.Name("y_true"))))
        body = ir.Call("sum", (ir.Binary("*", ir.Call("one_hot", (label,)), body),), (-1,))
    return ir.Program(program.bindings, body)


def _features(source: str) -> list[str]:
    """Which kinds of plan node the compiled loss has, to show the programs exercise them."""
    analysis = lossdsl.analyze(source)
    formulas = [analysis.expression] + [r.arg for r in analysis.table.in_order()]
    nodes = [node for formula in formulas for node in sympy.preorder_traversal(formula)]
    found = {"reduction": any(node in analysis.table for node in nodes),
             "guarded where": any(isinstance(node, sympy.Piecewise) and _needs_guard(node)
                                  for node in nodes),
             "one_hot": any(isinstance(node, one_hot) for node in nodes),
             "count symbol": any(isinstance(node, Count)
                                 for node in nodes)}
    return [name for name, present in found.items() if present]


# Values no literal of the generated programs cancels: compile builds the values in and
# folds `(alpha - 0.5)/y_true` at alpha = 0.5 to 0, where the exported class, whose values
# are constructor arguments, computes 0/0 at y_true = 0 (as the formula says).
PARAMETER_VALUES = {"alpha": 0.7, "beta": 1.3}


def test_generated_programs_export_to_the_compiled_loss():
    """Every generated program compile accepts is exported and compared; none is skipped silently."""
    counts: Counter[str] = Counter()

    with tempfile.TemporaryDirectory() as directory:
        @scaled(2)
        @given(plan_programs(), st.integers(0, 2**16))
        def check(program, seed):
            source = str(program)
            counts["programs"] += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", lossdsl.LossDSLWarning)
                try:
                    lossdsl.compile(source, dtype="float64")
                except (lossdsl.DSLTypeError, lossdsl.DSLLimitError) as error:
                    # Documented limits (a constant like log(0.5 - 0.5), a formula too large):
                    # export refuses the same source with the same error.
                    with pytest.raises(type(error)):
                        export_source(source, "Refused")
                    counts["refused by compile"] += 1
                    event("refused by compile")
                    return
            try:
                export_source(source, "Probe")
            except lossdsl.LossDSLError as error:
                assert "Internal error" not in error.message, f"{source}: {error}"
                counts["refused by export"] += 1
                event(f"refused by export: {error.message[:40]}")
                return
            counts.update(_features(source))
            rng = np.random.default_rng(seed)
            interior = rng.uniform(0.1, 0.9, SHAPE), rng.uniform(0.1, 0.9, SHAPE)
            edges = rng.choice(EDGES, SHAPE), rng.choice(EDGES, SHAPE)
            for y_true, y_pred in (interior, edges):
                if compare(source, Path(directory), y_true, y_pred, PARAMETER_VALUES, counts):
                    counts["batches with finite values compared"] += 1
            counts["compared"] += 1
            event("compared")

        check()
    print(dict(counts))
    accepted = counts["programs"] - counts["refused by compile"]
    assert counts["compared"] == accepted - counts["refused by export"]
    assert counts["refused by export"] <= 0.02 * accepted, counts
    assert counts["compared"] >= 0.5 * counts["programs"], counts
    assert counts["batches with finite values compared"] >= counts["compared"], counts
    assert all(counts[kind] >= 3 for kind in ("reduction", "guarded where", "one_hot",
                                              "count symbol")), counts
