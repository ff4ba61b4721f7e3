"""The scikit-learn engine's thread cap: applied around each prediction, in the calling thread only.

The cap goes through one thread-pool controller per process (see
``SklearnEngine``); these tests read OpenMP's own thread count from inside a
real pipeline's ``predict_proba``, so a cap that is skipped, leaks past the
call or reaches another thread fails them.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime the cap acts on)
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController, threadpool_limits

from mlbatch.engines import SklearnEngine


def _openmp_threads() -> int:
    """omp_get_max_threads() of the calling thread, in the OpenMP runtime scikit-learn's own kernels link.

    The process may hold other runtimes (tl2cgen wheels ship their own libgomp,
    loaded when a compiled model is built), and threadpoolctl may list them
    first; the cap is about scikit-learn's.
    """
    runtimes = ThreadpoolController().select(user_api="openmp").info()
    sklearns = [r for r in runtimes if "scikit_learn" in r["filepath"]]
    return (sklearns or runtimes)[0]["num_threads"]


class _ThreadRecorder(ClassifierMixin, BaseEstimator):
    """A classifier that remembers the OpenMP threads its predictions, and a thread they start, were allowed."""

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        self.seen_: list[int] = []
        self.elsewhere_: list[int] = []  # another thread (a second batch) started during the prediction
        return self

    def predict_proba(self, X):
        self.seen_.append(_openmp_threads())
        self.elsewhere_.append(_new_thread_openmp_threads())
        return np.tile([0.25, 0.75], (len(X), 1))


def _features(spec) -> dict[str, np.ndarray]:
    out = {c: np.arange(4, dtype=float) for c in spec.features.numeric}
    out.update({c: np.array(["a", "b", "a", "c"], dtype=object) for c in spec.features.categorical})
    return out


@pytest.mark.parametrize("threads", [1, 7])
def test_capped_engine_predicts_on_its_threads_and_restores_the_callers(churn_spec, threads):
    recorder = _ThreadRecorder().fit(None)
    engine = SklearnEngine(Pipeline([("model", recorder)]), churn_spec, threads=threads)
    default = _new_thread_openmp_threads()
    with threadpool_limits(limits=3, user_api="openmp"):  # the caller's own setting, not the machine's
        scores = engine.score(_features(churn_spec))
        assert _openmp_threads() == 3
    assert recorder.seen_ == [threads]
    assert recorder.elsewhere_ == [default]
    np.testing.assert_array_equal(scores, np.full(4, 0.75))


def test_uncapped_engine_leaves_the_callers_threads(churn_spec):
    recorder = _ThreadRecorder().fit(None)
    engine = SklearnEngine(Pipeline([("model", recorder)]), churn_spec)
    with threadpool_limits(limits=3, user_api="openmp"):
        engine.score(_features(churn_spec))
    assert recorder.seen_ == [3]


def _new_thread_openmp_threads() -> int:
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(_openmp_threads()))
    worker.start()
    worker.join()
    return seen[0]


def test_the_cap_still_holds_once_a_second_openmp_runtime_is_loaded(churn_spec):
    """Building a compiled model loads tl2cgen's own libgomp after the engine's controller exists."""
    recorder = _ThreadRecorder().fit(None)
    engine = SklearnEngine(Pipeline([("model", recorder)]), churn_spec, threads=1)
    engine.score(_features(churn_spec))
    import tl2cgen  # noqa: F401  (its wheel's libgomp is a second OpenMP runtime in the process)

    assert len(ThreadpoolController().select(user_api="openmp").info()) >= 2
    engine.score(_features(churn_spec))
    assert recorder.seen_ == [1, 1]
