"""Extra named inputs (a mask, a weight map, a distance map): how a batch carries them.

A loss compiled with ``inputs=("mask",)`` takes ``y_true`` as a dict,
``{"y_true": labels, "mask": mask}``: :func:`checked_labels` checks its keys.
From there on the backends pass *labels* — the ``y_true`` tensor, or that dict
of tensors — wherever they passed ``y_true``, and :func:`named_inputs` gives a
plan its inputs by name either way. The extra inputs get no gradient in
``gradient="symbolic"`` mode, as ``y_true`` gets none.

No backend is imported here.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from lossdsl.errors import DSLShapeError

Tensor = Any

HOW_TO_PASS = (
    "pass y_true as a dict {'y_true': labels, 'mask': ...} with one entry per extra input; "
    "in fit/evaluate, build the model as lossdsl.LossInputsModel(inputs, outputs) and give "
    "fit(x, {'y_true': labels, 'mask': ...}) (a plain keras.Model refuses a dict y for one "
    "output); a pure elementwise weight can go through sample_weight= instead")


def named_inputs(labels: Tensor | dict, prediction: Tensor) -> dict[str, Tensor]:
    """A plan's inputs by name: ``labels`` is ``y_true``, or a dict of ``y_true`` and the extras."""
    if type(labels) is dict:
        return {**labels, "y_pred": prediction}
    return {"y_true": labels, "y_pred": prediction}


def label_tensors(labels: Tensor | dict) -> list[Tensor]:
    """The tensors of ``labels``: ``[y_true]``, or ``y_true`` and each extra input."""
    return list(labels.values()) if type(labels) is dict else [labels]


def no_gradient(labels: Tensor | dict) -> Any:
    """None for each label tensor, in the structure of ``labels`` (what a custom gradient returns)."""
    return dict.fromkeys(labels) if type(labels) is dict else None


def checked_labels(y_true: Any, names: Sequence[str], source: str) -> Any:
    """``y_true`` for a loss whose extra inputs are ``names``: a dict of exactly
    ``y_true`` and each of them (a plain dict in that order), or ``y_true`` itself when
    there are none.

    Raises:
        DSLShapeError: a tensor where the dict is needed, a dict where none is,
            or keys missing or unknown, each named.
    """
    if not names:
        if isinstance(y_true, Mapping):
            raise DSLShapeError(
                f"This loss has no extra inputs, but y_true is a dict with the keys "
                f"{sorted(map(str, y_true))}.", source=source,
                hint="pass the labels as y_true, or declare the other inputs: "
                     f"lossdsl.compile({source!r}, inputs=[...])")
        return y_true
    expected = ("y_true", *names)
    if not isinstance(y_true, Mapping):
        raise DSLShapeError(
            f"This loss takes the extra inputs {', '.join(names)}: y_true must be a dict "
            f"with the keys {list(expected)}, not a {type(y_true).__name__}.",
            source=source, hint=HOW_TO_PASS)
    missing = [name for name in expected if name not in y_true]
    unknown = sorted(str(key) for key in y_true if key not in expected)
    if missing or unknown:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
            ([f"unknown {', '.join(unknown)}"] if unknown else [])
        raise DSLShapeError(
            f"The dict y_true of this loss needs the keys {list(expected)}: "
            f"{'; '.join(parts)}.", source=source, hint=HOW_TO_PASS)
    return {name: y_true[name] for name in expected}


def align_extra_inputs(labels: dict, y_true: Tensor, y_pred: Tensor, ops: Any) -> dict:
    """``labels`` with ``y_true`` (already aligned) and each extra input brought to ``y_pred``'s
    rank: a trailing axis of 1 dropped, or axes of 1 added at the end. ``ops`` is the
    backend's namespace of ``squeeze``/``expand_dims`` (``tf``, ``keras.ops``).

    Raises:
        DSLShapeError: an extra input of a higher rank than ``y_pred`` (one trailing 1 apart).
    """
    aligned, rank = {"y_true": y_true}, len(y_pred.shape)
    for name, value in labels.items():
        if name == "y_true":
            continue
        if len(value.shape) == rank + 1 and value.shape[-1] == 1:
            value = ops.squeeze(value, -1)
        elif len(value.shape) > rank:
            raise DSLShapeError(
                f"The input `{name}` has rank {len(value.shape)}, more than y_pred's ({rank}): "
                "an extra input is brought to y_pred's rank (a trailing axis of 1 dropped, or "
                "axes of 1 added at the end) and broadcast against it.",
                hint=f"give `{name}` the shape of y_pred, or a shape that broadcasts to it")
        while len(value.shape) < rank:
            value = ops.expand_dims(value, -1)
        aligned[name] = value
    return aligned


__all__ = ["HOW_TO_PASS", "named_inputs", "label_tensors", "no_gradient", "checked_labels",
           "align_extra_inputs"]
