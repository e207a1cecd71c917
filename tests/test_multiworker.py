"""Batch statistics under MultiWorkerMirroredStrategy: two worker processes on loopback.

tests/multiworker_check.py starts a cluster of two TensorFlow workers on 127.0.0.1 (one CPU
replica each) and trains with ``fit`` on a ``tf.data.Dataset`` sharded with
``AutoShardPolicy.DATA`` (37 samples, global batch 16: the last batch of 5 split 3 and 2),
comparing to one device in a plain process. TensorFlow only (no ``backends`` marker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_multiworker_mirrored_strategy_batch_statistics_are_global() -> None:
    """Batch Dice, batch-centred MSE and the batch-all triplet loss (pairs gathered from both
    workers), both gradient modes, the default reduction and
    mean_with_sample_weight: the loss history and final weights of two workers equal one
    device's; a per-sample MSE equals Keras's own MSE in the cluster (Keras's per-replica mean
    differs from one device on these shards); with the all-reduce off batch Dice differs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "multiworker_check.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    errors = [line for line in lines if "error" in line]
    assert lines and not errors, errors or done.stderr[-3000:]
    header, *cases, timing = lines
    assert Path(header["lossdsl"]).resolve().is_relative_to(ROOT), header
    assert header["replicas"] == [2, 2] and header["last_shards"] == [3, 2], header
    assert "seconds" in timing, timing
    assert len(cases) == 17, cases
    for case in cases:
        for key in ("loss_difference", "weights_difference", "max_rel_difference"):
            assert isinstance(case[key], float), case
    batch = [case for case in cases if case["loss"] in ("batch dice", "centred mse",
                                                        "batch-all triplet")
             and case["mode"] in ("autodiff", "symbolic")]
    assert len(batch) == 12 and {case["reduction"] for case in batch} == {
        "sum_over_batch_size", "mean_with_sample_weight"}, batch
    assert all(case["compared_to"] == "one device" and case["max_rel_difference"] < 1e-5
               for case in batch), batch
    per_sample = [case for case in cases if case["loss"] == "per-sample mse"]
    assert len(per_sample) == 4 and all(case["max_rel_difference"] < 1e-5
                                        for case in per_sample), per_sample
    # Keras's per-replica mean of a per-sample loss is not one device's on shards of 3 and 2:
    # the shards are uneven, and the batch losses' agreement above is not by coincidence.
    assert all(case["one_device_difference"] > 1e-3 for case in per_sample), per_sample
    (control,) = [case for case in cases if case["mode"] == "control"]
    assert control["loss"] == "batch dice" and control["max_rel_difference"] > 1e-3, control
    assert all(case["ok"] for case in cases), [case for case in cases if not case["ok"]]
    assert done.returncode == 0, done.stderr[-3000:]
