"""Training under tf.distribute.MirroredStrategy (two logical CPUs) matches one device.

The check runs in a subprocess (tests/distribute_check.py): logical devices can
only be configured before TensorFlow initialises, which this process has done.
Cases: fit with the default reduction, with `sum`, with sample_weight; a custom
loop with strategy.run scaling by the global batch size, with and without weights.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lossdsl.keras.loss import GRADIENT_MODES

ROOT = Path(__file__).resolve().parents[1]
CASES = {"fit sum_over_batch_size", "fit sum", "fit sum_over_batch_size weighted",
         "strategy.run loop", "strategy.run loop weighted"}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", GRADIENT_MODES)
@pytest.mark.parametrize("path", ["plain ops", "fused XLA call"])
def test_mirrored_training_matches_one_device(mode, path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "FUSE_EVERY_BATCH": "1" if path == "fused XLA call" else "0"}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "distribute_check.py"), mode],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines and Path(lines[0]["lossdsl"]).resolve().is_relative_to(ROOT), done.stderr[-3000:]
    results = {line["case"]: line for line in lines[1:] if line["mode"] == mode}
    assert set(results) == CASES, done.stderr[-3000:]
    for result in results.values():
        assert result["ok"] and result["max_rel_difference"] < 1e-5, result
    assert done.returncode == 0, done.stderr[-3000:]
