"""Compiling is deterministic and thread-safe: the cache and the lazily built parser included."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import lossdsl
from lossdsl.analysis import analyze as compiler
from lossdsl.language import parse

SOURCES = (
    "p = clip(y_pred, 1e-7, 1 - 1e-7); alpha = 0.25; mean(-alpha*y_true*(1-p)^gamma*log(p))",
    "mean((y_pred - mean(y_pred))^2) + 0.1*gamma*max(abs(y_true - y_pred), axis=-1)",
    "-gamma*sum(y_true*log_softmax(y_pred))",
)
THREADS = 8


def _cold_caches() -> None:
    compiler.analyze.cache_clear()
    parse._parser.cache_clear()


def _fingerprint(source: str) -> tuple:
    """Everything a compile produces, as comparable values."""
    loss = lossdsl.compile(source, gamma=2.0)
    y_true = np.linspace(0.1, 0.9, 12).reshape(3, 4)
    value = float(loss(y_true, y_true[::-1]))
    return (loss.compiled.canonical, str(loss.expression), str(loss.gradient),
            tuple((k, str(v)) for k, v in sorted(loss.parameter_gradients.items())),
            tuple(sorted(loss.get_config().items(), key=str)), value,
            tuple(str(s) for s in loss.compiled.table.reductions))


def _all_at_once(work, arguments) -> list:
    barrier = threading.Barrier(len(arguments))

    def run(argument):
        barrier.wait()  # start together, on cold caches
        return work(argument)

    with ThreadPoolExecutor(len(arguments)) as pool:
        return list(pool.map(run, arguments))


@pytest.mark.parametrize("source", SOURCES)
def test_one_source_compiled_from_many_threads_gives_equal_objects(source):
    _cold_caches()
    results = _all_at_once(_fingerprint, [source] * THREADS)
    _cold_caches()
    assert all(result == results[0] for result in results)
    assert results[0] == _fingerprint(source)  # and equal to a compile on its own


def test_different_sources_compiled_at_once_do_not_mix():
    _cold_caches()
    sources = list(SOURCES) * 3
    results = _all_at_once(_fingerprint, sources)
    _cold_caches()
    for source, result in zip(sources, results):
        assert result == _fingerprint(source)


def test_symbolic_pipeline_is_thread_safe_without_keras():
    _cold_caches()
    analyses = _all_at_once(lambda s: compiler.compile_expression(s, {"gamma": 2.0}),
                            [SOURCES[0]] * THREADS)
    assert len({(str(a.gradient), str(a.parameter_gradients["gamma"])) for a in analyses}) == 1
