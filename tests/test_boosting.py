"""lossdsl.boosting: one lossdsl line as an XGBoost/LightGBM objective.

The proof is the libraries' own objectives: trained on the same data, seed,
parameters and starting margin, lossdsl's objective must give the built-in's
predictions. Both libraries compute gradients in float32, so the tolerance is a
few float32 ulps of margins of size ~5: 2e-6 absolute (measured: <= 4.8e-7).
The formulas are checked against finite differences and hand-worked values.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
import sympy

from lossdsl import boosting
from lossdsl.tools.cli import main
from lossdsl.errors import DSLNameError, DSLShapeError, DSLTypeError, LossDSLWarning
from lossdsl.ops import OPS
from lossdsl.boosting.numpy_eval import NUMPY_FORMS, NumpyPlan

xgb = pytest.importorskip("xgboost")  # the `test` extra installs both; CI runs these
lgb = pytest.importorskip("lightgbm")

LOGISTIC = "-y_true*log(sigmoid(y_pred)) - (1-y_true)*log(1-sigmoid(y_pred))"
SQUARED = "0.5*(y_pred - y_true)^2"
PSEUDO_HUBER = "slope = 1; slope^2*(sqrt(1 + ((y_pred - y_true)/slope)^2) - 1)"
POISSON = "exp(y_pred) - y_true*y_pred"
TWEEDIE = "rho = 1.5; -y_true*exp((1-rho)*y_pred)/(1-rho) + exp((2-rho)*y_pred)/(2-rho)"
SQUARED_LOG = "0.5*(log1p(y_pred) - log1p(y_true))^2"
SOFTMAX = "-sum(one_hot(y_true)*log_softmax(y_pred))"
FAIR = "c = 1; c^2*(abs(y_pred - y_true)/c - log1p(abs(y_pred - y_true)/c))"
GAMMA = "y_true*exp(-y_pred) + y_pred"
FOCAL = ("p = sigmoid(y_pred); alpha = 0.25; gamma = 2; "
         "-alpha*y_true*(1-p)^gamma*log(p) - (1-alpha)*(1-y_true)*p^gamma*log(1-p)")
TOLERANCE = 2e-6
ROUNDS = 15


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 5))
    signal = x[:, 0] - 0.5 * x[:, 1] + 0.3 * x[:, 2] * x[:, 3]
    return {
        "x": x, "weight": rng.uniform(0.5, 2.0, n),
        "regression": signal + rng.normal(scale=0.5, size=n),
        "binary": (rng.random(n) < 1 / (1 + np.exp(-2 * signal))).astype(float),
        "count": rng.poisson(np.exp(0.5 * signal)).astype(float),
        "positive": np.exp(0.3 * signal + rng.normal(scale=0.3, size=n)),
        "class": np.digitize(signal, [-0.5, 0.5]).astype(float),
    }


DATA = _data()


def _quiet_objective(source: str, **keywords) -> boosting.BoostingObjective:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LossDSLWarning)
        return boosting.objective(source, **keywords)


def _start(obj: boosting.BoostingObjective, labels: np.ndarray, classes: int) -> np.ndarray:
    """The same starting margin for both runs: the loss's best constant, per sample."""
    base = obj.base_score(labels, DATA["weight"], num_class=classes if classes > 1 else None)
    n = len(labels)
    return np.tile(base, (n, 1)) if classes > 1 else np.full(n, base)


# builtin, source, objective options, labels, extra library params
XGBOOST_CASES = [
    ("reg:squarederror", SQUARED, {}, "regression", {}),
    ("binary:logistic", LOGISTIC, {"hessian_floor": 1e-16}, "binary", {}),
    ("reg:pseudohubererror", PSEUDO_HUBER, {"slope": 1.5}, "regression", {"huber_slope": 1.5}),
    # Built-in Poisson's Hessian is exp(margin + max_delta_step): 0 makes it the true one.
    ("count:poisson", POISSON, {}, "count", {"max_delta_step": 0.0}),
    ("reg:tweedie", TWEEDIE, {}, "count", {"tweedie_variance_power": 1.5}),
    ("reg:squaredlogerror", SQUARED_LOG, {"hessian_floor": 1e-6}, "positive", {}),
    ("multi:softprob", SOFTMAX, {"hessian_scale": 2.0, "hessian_floor": 1e-16}, "class",
     {"num_class": 3}),
]


@pytest.mark.parametrize("builtin, source, options, labels, extra", XGBOOST_CASES,
                         ids=[case[0] for case in XGBOOST_CASES])
def test_xgboost_builtin_and_lossdsl_objective_predict_the_same(builtin, source, options,
                                                               labels, extra):
    obj = _quiet_objective(source, **options)
    y, classes = DATA[labels], extra.get("num_class", 1)
    start = _start(obj, y, classes)
    params = {"max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1, "tree_method": "hist", **extra}
    margins = []
    for objective, custom in ((builtin, None), (None, obj)):
        train = xgb.DMatrix(DATA["x"], label=y, weight=DATA["weight"], base_margin=start)
        run = dict(params, objective=objective) if objective else params
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "huber_slope not used" by custom runs
            booster = xgb.train(run, train, ROUNDS, obj=custom)
        margins.append(booster.predict(train, output_margin=True))
    assert margins[0].shape == margins[1].shape == ((len(y), classes) if classes > 1 else (len(y),))
    assert np.max(np.abs(margins[0] - start)) > 0.5  # it trained
    np.testing.assert_allclose(margins[1], margins[0], rtol=0, atol=TOLERANCE)


LIGHTGBM_CASES = [
    ("regression", SQUARED, {}, "regression", {}),
    ("binary", LOGISTIC, {}, "binary", {}),
    # LightGBM's Poisson Hessian is exp(margin + poisson_max_delta_step), which must be > 0.
    ("poisson", POISSON, {"hessian_scale": float(np.exp(0.7))}, "count", {}),
    ("tweedie", TWEEDIE, {}, "count", {"tweedie_variance_power": 1.5}),
    ("fair", FAIR, {"c": 0.7}, "regression", {"fair_c": 0.7}),
    ("gamma", GAMMA, {}, "positive", {}),
    # LightGBM's multiclass Hessian is K/(K-1) * p*(1-p).
    ("multiclass", SOFTMAX, {"hessian_scale": 1.5}, "class", {"num_class": 3}),
]


@pytest.mark.parametrize("builtin, source, options, labels, extra", LIGHTGBM_CASES,
                         ids=[case[0] for case in LIGHTGBM_CASES])
def test_lightgbm_builtin_and_lossdsl_objective_predict_the_same(builtin, source, options,
                                                                labels, extra):
    obj = _quiet_objective(source, **options)
    y, classes = DATA[labels], extra.get("num_class", 1)
    start = _start(obj, y, classes)
    params = {"num_leaves": 8, "learning_rate": 0.3, "seed": 0, "num_threads": 1, "verbose": -1,
              "deterministic": True, "force_row_wise": True, "boost_from_average": False, **extra}
    margins = []
    for objective in (builtin, obj):
        train = lgb.Dataset(DATA["x"], label=y, weight=DATA["weight"], init_score=start)
        booster = lgb.train(dict(params, objective=objective), train, ROUNDS)
        margins.append(booster.predict(DATA["x"], raw_score=True))  # trees only, no init_score
    assert np.max(np.abs(margins[0])) > 0.5
    np.testing.assert_allclose(margins[1], margins[0], rtol=0, atol=TOLERANCE)


def test_sklearn_apis_apply_sample_weights_like_the_builtins():
    y, w, x = DATA["binary"], DATA["weight"], DATA["x"]
    obj = _quiet_objective("softplus(y_pred) - y_true*y_pred", hessian_floor=1e-16)
    base = obj.base_score(y, w)
    common = dict(n_estimators=8, max_depth=3, learning_rate=0.3, random_state=0, n_jobs=1)
    ours = xgb.XGBRegressor(objective=obj, base_score=base, **common).fit(x, y, sample_weight=w)
    # The built-in's base_score is a probability; a custom objective's is a margin.
    theirs = xgb.XGBClassifier(objective="binary:logistic", base_score=1 / (1 + np.exp(-base)),
                               **common).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(ours.predict(x, output_margin=True),
                               theirs.predict(x, output_margin=True), atol=TOLERANCE)
    unweighted = xgb.XGBRegressor(objective=obj, base_score=base, **common).fit(x, y)
    assert np.max(np.abs(unweighted.predict(x) - ours.predict(x))) > 1e-3  # weights mattered

    common = dict(n_estimators=8, num_leaves=8, learning_rate=0.3, random_state=0, n_jobs=1,
                  verbose=-1, boost_from_average=False)
    start = np.full(len(y), base)
    ours = lgb.LGBMRegressor(objective=obj, **common).fit(x, y, sample_weight=w, init_score=start)
    theirs = lgb.LGBMClassifier(objective="binary", **common).fit(x, y, sample_weight=w,
                                                                 init_score=start)
    np.testing.assert_allclose(ours.predict(x, raw_score=True),
                               theirs.predict(x, raw_score=True), atol=TOLERANCE)


def test_weighted_gradient_and_hessian_are_the_weight_times_the_unweighted():
    obj = _quiet_objective(POISSON)
    y, margin, w = np.array([0.0, 2.0, 5.0]), np.array([-1.0, 0.5, 2.0]), np.array([0.5, 1.0, 3.0])
    grad, hess = obj(y, margin, w)
    np.testing.assert_allclose(grad, w * (np.exp(margin) - y), rtol=1e-15)
    np.testing.assert_allclose(hess, w * np.exp(margin), rtol=1e-15)


def test_metric_is_the_builtin_metric_for_logistic_and_softmax():
    x, w = DATA["x"], DATA["weight"]
    for source, builtin, metric, labels, extra in (
            (LOGISTIC, "binary:logistic", "logloss", "binary", {}),
            (SOFTMAX, "multi:softprob", "mlogloss", "class", {"num_class": 3})):
        obj = _quiet_objective(source)
        y = DATA[labels]
        train = xgb.DMatrix(x, label=y, weight=w)
        history: dict = {}
        booster = xgb.train({"objective": builtin, "eval_metric": metric, "max_depth": 2,
                             "nthread": 1, **extra}, train, 3, evals=[(train, "train")],
                            evals_result=history, verbose_eval=False)
        margin = booster.predict(train, output_margin=True)
        name, value = obj.metric(margin, train)
        assert name == "lossdsl"
        assert value == pytest.approx(history["train"][metric][-1], rel=1e-5)
        lgb_name, lgb_value, higher_is_better = obj.metric(margin, lgb.Dataset(
            x, label=y, weight=w).construct())
        assert (lgb_name, higher_is_better) == ("lossdsl", False)
        assert lgb_value == pytest.approx(value, rel=1e-12)


def test_focal_loss_on_logits_beats_logistic_loss_on_imbalanced_digits():
    from sklearn.datasets import load_digits
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    x, digit = load_digits(return_X_y=True)
    y = (digit == 8).astype(float)  # 10% positives
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0,
                                                        stratify=y)
    scores = {}
    for name, obj in (("logistic", _quiet_objective("softplus(y_pred) - y_true*y_pred")),
                      ("focal", _quiet_objective(FOCAL, alpha=0.75, gamma=2.0,
                                                 hessian_floor=1e-6))):
        booster = xgb.train({"max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1,
                             "base_score": obj.base_score(y_train)},
                            xgb.DMatrix(x_train, label=y_train), 30, obj=obj)
        margin = booster.predict(xgb.DMatrix(x_test), output_margin=True)
        scores[name] = balanced_accuracy_score(y_test, margin > 0)
    assert scores["logistic"] > 0.8  # both train
    assert scores["focal"] > scores["logistic"] + 0.01, scores


# ---------------------------------------------------------------- formulas

def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_softmax_hessian_is_p_times_one_minus_p():
    rng = np.random.default_rng(1)
    margin, labels = rng.normal(size=(6, 4)) * 3, rng.integers(0, 4, 6).astype(float)
    grad, hess = _quiet_objective(SOFTMAX)(labels, margin)
    p = _softmax(margin)
    np.testing.assert_allclose(grad, p - np.eye(4)[labels.astype(int)], atol=1e-15)
    np.testing.assert_allclose(hess, p * (1 - p), atol=1e-15)


@pytest.mark.parametrize("source, params", [
    (LOGISTIC, {}), (PSEUDO_HUBER, {"slope": 0.7}), (TWEEDIE, {}), (SQUARED_LOG, {}),
    (SOFTMAX, {}), (FOCAL, {}), (GAMMA, {}),
    ("mean((y_pred - mean(y_pred))^2) + logsumexp(2*y_pred)", {}),
    ("max(y_pred)^2 + sum(exp(-y_pred)*y_true)", {}),
    ("logsumexp(y_pred - logsumexp(y_pred)*y_true)", {}),
    ("where(y_pred > y_true, 2*(y_pred - y_true)^2, clip(y_true - y_pred, 0, 3)^3)", {}),
])
def test_gradient_and_hessian_agree_with_finite_differences(source, params):
    obj = _quiet_objective(source, **params)
    rng = np.random.default_rng(2)
    if "one_hot" in source or "max(" in source or "mean(" in source or "logsumexp" in source:
        labels, margin = rng.integers(0, 3, (20, 1)).astype(float), rng.normal(size=(20, 3))
    else:
        labels, margin = rng.uniform(0.1, 3, 20), rng.normal(size=20)
    report = obj.check(labels, margin)
    assert report.passed, str(report)
    assert obj.check().passed  # on the default grid too


def test_check_fails_for_a_wrong_hessian():
    obj = _quiet_objective(POISSON)
    f = obj.formulas
    obj._plan = NumpyPlan([f.gradient, 1.01 * f.hessian], f.table)  # a 1% error
    report = obj.check(np.array([1.0, 2.0]), np.array([0.3, -0.4]))
    assert not report.passed and report.gradient_error <= 1 < report.hessian_error


def test_hessians_of_the_well_known_losses_by_hand():
    cases = {POISSON: "exp(y_pred)", "softplus(y_pred) - y_true*y_pred":
             "sigmoid(-y_pred)*sigmoid(y_pred)", SQUARED: "1.00000000000000"}
    for source, expected in cases.items():
        assert str(boosting.second_order(source).hessian) == expected


def test_negative_and_zero_hessians_are_warned():
    with pytest.warns(LossDSLWarning, match="Hessian .* is negative .* hessian_floor"):
        obj = boosting.objective(SQUARED_LOG)
    assert len(obj.warnings) == 1
    with pytest.warns(LossDSLWarning, match="is zero"):
        boosting.objective("abs(y_pred - y_true)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossDSLWarning)
        for source in (LOGISTIC, POISSON, SOFTMAX, PSEUDO_HUBER):
            assert boosting.objective(source).warnings == ()
    # Tweedie's Hessian is negative only for labels outside its domain (y < 0).
    tweedie = boosting.objective(TWEEDIE)
    assert tweedie.hessian_warnings(np.array([-3.0, 1.0]))


def test_base_score_is_the_best_constant_margin_by_hand():
    y = np.array([0.0, 1.0, 1.0, 3.0])
    w = np.array([1.0, 2.0, 1.0, 0.5])
    mean = np.average(y, weights=w)
    assert _quiet_objective(SQUARED).base_score(y, w) == pytest.approx(mean, abs=1e-10)
    assert _quiet_objective(POISSON).base_score(y, w) == pytest.approx(np.log(mean), abs=1e-10)
    b = np.array([0.0, 1.0, 1.0, 1.0])
    assert _quiet_objective(LOGISTIC).base_score(b) == pytest.approx(np.log(3.0), abs=1e-10)
    labels = np.array([0, 1, 1, 2, 2, 2], dtype=float)
    start = _quiet_objective(SOFTMAX).base_score(labels, num_class=3)
    np.testing.assert_allclose(_softmax(start[None, :])[0], [1 / 6, 2 / 6, 3 / 6], atol=1e-8)


def test_numpy_forms_cover_every_ops_row_and_match_tensorflow():
    assert set(NUMPY_FORMS) == {op.name for op in OPS}
    import lossdsl

    rng = np.random.default_rng(3)
    y_true, y_pred = rng.uniform(0.05, 0.95, (8, 4)), rng.normal(size=(8, 4))
    warnings.simplefilter("ignore", LossDSLWarning)  # log(y_true): y_true stays in (0, 1) here
    sources = [
        "abs(y_pred) + exp(y_pred) + log(y_true) + log1p(y_true) + expm1(y_pred)",
        "sqrt(y_true) + square(y_pred) + sin(y_pred) + cos(y_pred) + tanh(y_pred) + cosh(y_pred)",
        "sigmoid(y_pred) + softplus(y_pred) + relu(y_pred) + sign(y_pred)",
        "maximum(y_pred, y_true) + maximum(y_true, 0.5)",
        "minimum(y_pred, y_true) + clip(y_pred, -0.5, 0.5) + where(y_pred > 0, y_pred, 2*y_true)",
        "xlogy(y_true, y_true) + xlog1py(y_true, y_true) + xdivy(y_true, y_true + 1)",
        "one_hot(2)*y_pred + mean(y_pred) + sum(y_true) + max(y_pred) + min(y_pred)",
        "logsumexp(y_pred) + softmax(y_pred) + log_softmax(y_pred)",
    ]
    for source in sources:
        formulas = boosting.second_order(source)
        (ours,) = NumpyPlan([formulas.expression], formulas.table).run(
            {"y_true": y_true, "y_pred": y_pred}, {})
        theirs = lossdsl.compile(source, dtype="float64", reduction="none")(y_true, y_pred)
        theirs = np.asarray(theirs).reshape(len(y_true), -1)  # (8, 1) when reduced
        np.testing.assert_allclose(ours, np.broadcast_to(theirs, ours.shape), rtol=1e-12,
                                   err_msg=source)


# ---------------------------------------------------------------- the object

def test_pickles_and_deepcopies_by_source():
    obj = _quiet_objective(FOCAL, gamma=1.5, hessian_floor=1e-6)
    again = pickle.loads(pickle.dumps(obj))
    assert (again.source, again.params, again.hessian_floor) == (obj.source, obj.params, 1e-6)
    margin, y = np.array([-2.0, 0.1, 3.0]), np.array([0.0, 1.0, 1.0])
    np.testing.assert_array_equal(again(y, margin)[1], obj(y, margin)[1])
    assert copy.deepcopy(obj) is obj
    assert pickle.loads(pickle.dumps(obj.metric)).value(y, margin) == obj.metric.value(y, margin)


def test_mistakes_are_lossdsl_errors():
    with pytest.raises(DSLShapeError, match="one axis"):
        boosting.objective("mean(y_pred, axis=2)")
    with pytest.raises(DSLNameError, match="alpah"):
        boosting.objective(FOCAL, alpah=0.5)
    with pytest.raises(DSLTypeError, match="hessian_scale"):
        boosting.objective(SQUARED, hessian_scale=-1.0)


def test_explain_and_cli_show_the_hessian(capsys):
    text = _quiet_objective(POISSON).explain()
    assert "y_pred is the raw margin" in text and "exp(y_pred)" in text.split("diagonal)")[1]
    assert main(["show", "softplus(y_pred) - y_true*y_pred", "--hessian"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("sigmoid(y_pred) * sigmoid(-y_pred)")
    assert main(["show", POISSON, "--hessian", "--json"]) == 0
    import json
    assert json.loads(capsys.readouterr().out)["formulas"]["hessian"]["text"] == "exp(y_pred)"
    assert main(["show", "mean(y_pred, axis=2)", "--hessian"]) == 2
    assert "one axis" in capsys.readouterr().err
    assert sympy.Symbol("y_pred", real=True) in boosting.second_order(POISSON).hessian.free_symbols


def test_review_regressions_softmax_clip_read_only_params_and_an_empty_check():
    # DiracDelta reached the user from the Hessian of a clipped softmax (an internal error).
    clipped = _quiet_objective("-sum(one_hot(y_true)*log(clip(softmax(y_pred), 1e-7, 1)))",
                               num_class=3)
    assert clipped.check().passed
    # Editing params did nothing until a pickle round-trip applied it.
    obj = _quiet_objective("a*(y_true - y_pred)^2", a=1.0)
    with pytest.raises(TypeError, match="read-only"):
        obj.params["a"] = 5.0
    # No point of the grid in the domain: a failed check, not a reshape error.
    empty = _quiet_objective("sqrt(y_pred - 100)").check()
    assert not empty.passed and not empty.compared and "INCONCLUSIVE" in str(empty)
