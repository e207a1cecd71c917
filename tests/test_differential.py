"""The differential property: every way lossdsl computes a loss is the same program.

For each generated program (``tests/dsl_strategies.py``) and each loss of the
library, four independent computations of the per-sample loss must agree:

- ``lossdsl.compile(..., gradient="autodiff")`` (the plan TensorFlow runs),
- ``lossdsl.compile(..., gradient="symbolic")`` (same forward, derived backward),
- the module ``lossdsl export`` writes, imported from a file,
- the NumPy interpreter of the IR (written from the README, no SymPy, no rewrites),

in value wherever the NumPy reference is finite, and the three tape gradients
w.r.t. ``y_pred`` must agree with each other and with the symbolic formula
(``lossdsl.check_gradients``). The stability rewrites must never turn a finite
reference non-finite: wherever the NumPy value is finite, so is every compiled
value, and wherever the tape of the formula as written (the same walk in TF ops,
no rewrite) is finite, so is every tape gradient. Gradients are compared, and the
formula checked, on the samples whose reference loss is finite at every element.

Inputs are drawn from (0.1, 0.9) and, in a second pass, from the edges
{-1, 0, 0.5, 1, 2}, where rewrites such as ``x*log(y) -> xlogy(x, y)`` matter.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from backend_support import tape_value_and_gradient
from dsl_strategies import SHAPE, NumpyInterpreter, programs
from hypothesis import event, given, settings
from test_trust_rewrites import AsWrittenTF
from hypothesis import strategies as st

import lossdsl
from lossdsl import losses
from lossdsl.language import ir
from lossdsl.tools.export import export_to_file

pytestmark = pytest.mark.timeout(900)

EDGES = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
RTOL, ATOL = 1e-7, 1e-9


def scaled(factor: float) -> settings:
    """``factor`` times the profile's example count (100 in CI, 2,500 in the long run)."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


# ---------------------------------------------------------------- the four computations

class Exported:
    """The module ``lossdsl export`` writes for a source, imported from a file (no exec)."""

    _count = 0

    def __init__(self, source: str, params: dict[str, float], directory: Path) -> None:
        Exported._count += 1
        name = f"exported_loss_{Exported._count}"
        path = export_to_file(source, "ExportedLoss", directory / f"{name}.py", **params)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # keras's registration looks the class's module up
        spec.loader.exec_module(module)
        self.loss = module.ExportedLoss(dtype="float64")


def _value_and_tape_gradient(loss, y_true: np.ndarray, y_pred: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
    """The per-sample loss (``loss.call``) and the tape's gradient of its sum w.r.t. y_pred."""
    y_pred = tf.constant(y_pred, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = loss.call(tf.constant(y_true, tf.float64), y_pred)
        total = tf.reduce_sum(value)
    gradient = tape.gradient(total, y_pred)
    gradient = np.zeros(y_pred.shape) if gradient is None else gradient.numpy()
    return value.numpy(), gradient


def _expand(per_sample: np.ndarray, full_shape: tuple[int, ...]) -> np.ndarray:
    """Undo the squeeze of the axes along which the loss is constant (sizes are distinct)."""
    per_sample = np.asarray(per_sample)
    if per_sample.shape == full_shape:
        return per_sample
    kept, squeezed = iter(per_sample.shape), []
    current = next(kept, None)
    for axis, size in enumerate(full_shape):
        if size == current:
            current = next(kept, None)
        else:
            squeezed.append(axis)
    return np.broadcast_to(np.expand_dims(per_sample, squeezed), full_shape)


def _as_written_tape_gradient(program: ir.Program, params: dict, y_true: np.ndarray,
                              y_pred: np.ndarray) -> np.ndarray:
    """The tape's d(sum of the loss)/d y_pred of the program as written: TF ops, no rewrite.

    The reference for "a rewrite never makes a finite gradient non-finite": where the
    written formula's own tape is finite, lossdsl's must be too.
    """
    variable = tf.Variable(np.broadcast_to(y_pred, np.broadcast_shapes(y_true.shape,
                                                                       y_pred.shape)))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(AsWrittenTF(program, tf.constant(y_true), variable, params).run())
    gradient = tape.gradient(total, variable)
    return np.zeros(variable.shape) if gradient is None else gradient.numpy()


def _points(seed: int, edges: bool, shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    if edges:
        return rng.choice(EDGES, shape), rng.choice(EDGES, shape)
    return rng.uniform(0.1, 0.9, shape), rng.uniform(0.1, 0.9, shape)


def assert_all_computations_agree(program: ir.Program, params: dict[str, float],
                                  y_true: np.ndarray, y_pred: np.ndarray,
                                  directory: Path) -> "lossdsl.GradientReport":
    """The differential property at one point (see the module docstring).

    Returns the gradient check of the symbolic formula against the tape, which may be
    inconclusive (too few finite entries, at the edges): not a pass, so callers count it;
    None when no sample has a finite reference loss to check it on.
    """
    source = str(program)
    autodiff = lossdsl.compile(source, dtype="float64", **params)
    symbolic = lossdsl.compile(source, dtype="float64", gradient="symbolic", **params)
    exported = Exported(source, dict(autodiff.params), directory).loss
    shape = np.broadcast_shapes(y_true.shape, y_pred.shape)
    reference = NumpyInterpreter(program, y_true, y_pred, dict(autodiff.params)).run()
    finite = np.isfinite(reference)

    results = {name: _value_and_tape_gradient(loss, y_true, y_pred)
               for name, loss in (("autodiff", autodiff), ("symbolic", symbolic),
                                  ("exported", exported))}
    for name, (value, _) in results.items():
        value = _expand(value, shape)
        assert np.all(np.isfinite(value[finite])), (
            f"{name}: finite reference, non-finite value\n{source}\n"
            f"y_true={y_true[~np.isfinite(value) & finite]}")
        np.testing.assert_allclose(value[finite], reference[finite], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name} value != NumPy reference\n{source}")

    # Gradients are compared on the samples whose reference loss is finite at every
    # element: a NaN element's gradient (TF's conventions for NaN decide it, not the
    # formula) reaches every element of its sample through a shared reduction.
    rows = np.all(finite.reshape(len(finite), -1), axis=1)
    sound = np.broadcast_to(rows.reshape((-1,) + (1,) * (finite.ndim - 1)), finite.shape)
    tape = results["autodiff"][1]
    for name in ("symbolic", "exported"):
        other = results[name][1]
        both = np.isfinite(tape) & np.isfinite(other) & sound
        if name == "exported":  # the same TF ops: finite at the same entries
            assert np.array_equal(np.isfinite(tape), np.isfinite(other)), (
                f"exported and autodiff gradients differ in where they are finite\n{source}")
        # The derived formula may be NaN where TF's op gradients give a number for an
        # infinite derivative (d abs(sqrt(x)) at 0: sign(0)*inf); the check below holds
        # both to finiteness wherever the written formula's own tape is finite.
        np.testing.assert_allclose(other[both], tape[both], rtol=1e-6, atol=1e-9,
                                   err_msg=f"{name} tape gradient != autodiff's\n{source}")

    written = np.isfinite(_as_written_tape_gradient(program, dict(autodiff.params), y_true,
                                                    y_pred)) & sound
    for name, (_, gradient) in results.items():
        assert np.all(np.isfinite(gradient[written])), (
            f"{name}: the formula as written has a finite tape gradient where lossdsl's is not "
            f"finite\n{source}\ny_true={y_true[written & ~np.isfinite(gradient)]}, "
            f"y_pred={y_pred[written & ~np.isfinite(gradient)]}")

    # The formula against the tape, on the same samples: parameter gradients are
    # compared as batch totals.
    if not rows.any():
        return None
    y_true, y_pred = (np.broadcast_to(y, finite.shape)[rows] for y in (y_true, y_pred))
    report = lossdsl.check_gradients(autodiff, y_true, y_pred, rtol=1e-6, atol=1e-8)
    assert not report.mismatched, f"{source}\n{report}"
    return report


def assert_pair_computations_agree(program: ir.Program, params: dict[str, float],
                                   y_true: np.ndarray, y_pred: np.ndarray,
                                   directory: Path) -> "lossdsl.GradientReport | None":
    """The differential property for a program with pair functions, on the whole batch.

    Autodiff, symbolic and exported agree with the NumPy interpreter in value (its mean,
    Keras's reduction) and with each other in tape gradient, and the derived formula with
    the tape. A batch is not split into its finite samples (each sample's value depends on
    the others); None when the reference is not finite everywhere.
    """
    source = str(program)
    autodiff = lossdsl.compile(source, dtype="float64", **params)
    symbolic = lossdsl.compile(source, dtype="float64", gradient="symbolic", **params)
    exported = Exported(source, dict(autodiff.params), directory).loss
    try:
        reference = NumpyInterpreter(program, y_true, y_pred, dict(autodiff.params)).run()
    except ValueError:  # the source reads (batch, 3) predictions where lossdsl's formula,
        return None     # simplified, does not (0*y_pred): the interpreter reads it as written
    if not np.isfinite(reference).all():
        return None
    results = {name: tape_value_and_gradient(lambda t, p: loss(t, p), y_true, y_pred)
               for name, loss in (("autodiff", autodiff), ("symbolic", symbolic),
                                  ("exported", exported))}
    for name, (value, _) in results.items():
        np.testing.assert_allclose(value, np.mean(reference), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name} value != NumPy reference\n{source}")
    tape = results["autodiff"][1]
    for name in ("symbolic", "exported"):
        both = np.isfinite(tape) & np.isfinite(results[name][1])
        np.testing.assert_allclose(results[name][1][both], tape[both], rtol=1e-6, atol=1e-9,
                                   err_msg=f"{name} tape gradient != autodiff's\n{source}")
    report = lossdsl.check_gradients(autodiff, y_true, y_pred, rtol=1e-6, atol=1e-8)
    assert not report.mismatched, f"{source}\n{report}"
    return report


def _compiles(source: str) -> bool:
    """Whether a generated program compiles; a documented refusal is not a failure."""
    try:
        lossdsl.compile_expression(source)
    except lossdsl.DSLTypeError as error:  # a constant like log(0.5 - 0.5)
        assert "constant" in error.message or "real" in error.message, error
        event("refused: not a real constant")
        return False
    except lossdsl.DSLLimitError as error:
        event(f"refused: {error.message[:40]}")
        return False
    return True


# ---------------------------------------------------------------- generated programs

@pytest.fixture(scope="module")
def export_directory(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exported")


@scaled(1)
@given(programs(depth=3), st.integers(0, 2**16), st.booleans())
def test_every_computation_of_a_generated_program_agrees(export_directory, program, seed,
                                                          edges) -> None:
    if not _compiles(str(program)):
        return
    event("compared at the edges" if edges else "compared inside (0.1, 0.9)")
    y_true, y_pred = _points(seed, edges)
    report = assert_all_computations_agree(program, {}, y_true, y_pred, export_directory)
    event("formula vs tape: no finite sample" if report is None else
          "formula vs tape: inconclusive" if report.inconclusive else "formula vs tape: agree")


# ---------------------------------------------------------------- the library

def _variants() -> list[tuple[str, dict]]:
    """Every loss with each of its boolean options flipped, and a two-axis reduction."""
    variants = []
    for spec in losses.available():
        variants.append((spec.name, {}))
        for option, default in spec.options.items():
            if isinstance(default, bool):
                variants.append((spec.name, {option: not default}))
            elif option == "axis":
                variants.append((spec.name, {option: (1, 2)}))
    return variants


def _library_points(source: str, seed: int, edges: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of the loss's kind: integer labels for one_hot(y_true), rank 3 for axis=(1, 2)."""
    shape = (3, 4, 5) if "axis=(1, 2)" in source else (4, 5)
    y_true, y_pred = _points(seed, edges, shape)
    if "pair_" in source:  # class ids, and (batch, batch): embeddings or a similarity matrix
        y_true = np.random.default_rng(seed).integers(0, 2, (6, 1)).astype(np.float64)
        y_pred = _points(seed, edges, (6, 6))[1]
    if "one_hot(y_true)" in source:
        y_true = np.random.default_rng(seed).integers(0, shape[-1], shape[:-1] + (1,))
        y_true = y_true.astype(np.float64)
    return y_true, y_pred


@pytest.mark.parametrize("edges", [False, True], ids=["inside", "edges"])
@pytest.mark.parametrize("name, options", _variants(),
                         ids=[f"{n}-{o}" if o else n for n, o in _variants()])
def test_every_computation_of_a_library_loss_agrees(export_directory, name, options,
                                                    edges) -> None:
    spec = losses.REGISTRY[name]
    source = spec.source_for(**options)
    y_true, y_pred = _library_points(source, seed=len(name), edges=edges)
    check = assert_pair_computations_agree if "pair_" in source else assert_all_computations_agree
    report = check(ir.parse_source(source), {}, y_true, y_pred, export_directory)
    if not edges:  # inside the loss's usual range the formula check must conclude
        assert report is not None and report.passed, f"{source}\n{report}"
