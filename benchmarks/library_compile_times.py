"""Cold compile time of every loss in ``lossdsl.losses`` (parse, lower, differentiate, simplify).

Each source (every option combination) is analyzed ``--repeat`` times with the
compile cache cleared before each run; the median and the worst run are printed
per loss, then the median and worst over all of them.

    python benchmarks/library_compile_times.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tree under test

from lossdsl import losses  # noqa: E402
from lossdsl.analysis.analyze import analyze  # noqa: E402

AXIS_CHOICES = (None, -1, (1,))


def option_sources(spec: losses.LossSpec) -> dict[str, str]:
    """Every source a loss can have, keyed by its options."""
    names = list(spec.options)
    choices = [AXIS_CHOICES if name == "axis" else (False, True) for name in names]
    sources = {}
    for combination in itertools.product(*choices):
        options = dict(zip(names, combination))
        label = ",".join(f"{k}={v}" for k, v in options.items())
        sources[f"{spec.name}({label})"] = spec.source_for(**options)
    return sources


def cold_times(source: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        analyze.cache_clear()
        start = time.perf_counter()
        analyze(source)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    analyze("mean(y_pred)")  # import-time work (grammar, SymPy caches) out of the figures
    medians, worsts = [], []
    for spec in losses.available():
        for label, source in option_sources(spec).items():
            times = cold_times(source, repeat)
            medians.append(statistics.median(times))
            worsts.append(max(times))
            print(f"{label:75s} median {1e3 * medians[-1]:7.1f} ms   "
                  f"worst {1e3 * worsts[-1]:7.1f} ms")
    print(f"\n{len(medians)} sources: median of medians "
          f"{1e3 * statistics.median(medians):.1f} ms, slowest median {1e3 * max(medians):.1f} ms, "
          f"worst single run {1e3 * max(worsts):.1f} ms")


if __name__ == "__main__":
    main()
