"""Example 7: focal loss as an XGBoost and LightGBM objective, from one lossdsl line.

Data: scikit-learn's bundled 8x8 digits (no download); the task is "is it an
8?" (10% positives), half the data held out. The focal loss is written on the
**raw margin** ``y_pred`` (``p = sigmoid(y_pred)``); lossdsl derives its gradient
and the diagonal of its Hessian, stabilises them, checks both against finite
differences, warns that the Hessian is negative somewhere (the reason for
``hessian_floor``), and gives the best constant starting margin. XGBoost and
LightGBM then train with it and with plain logistic loss (also one lossdsl
line, checked against the built-in ``binary:logistic``); the script prints the
held-out balanced accuracy of each.

Run: python examples/boosting_focal.py
"""

import warnings

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_digits
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from lossdsl import boosting

FOCAL = ("p = sigmoid(y_pred); alpha = 0.25; gamma = 2; "
         "-alpha*y_true*(1-p)^gamma*log(p) - (1-alpha)*(1-y_true)*p^gamma*log(1-p)")
LOGISTIC = "softplus(y_pred) - y_true*y_pred"

x, digit = load_digits(return_X_y=True)
y = (digit == 8).astype(float)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=0,
                                                    stratify=y)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    focal = boosting.objective(FOCAL, alpha=0.75, gamma=2.0, hessian_floor=1e-6)
print(focal.explain())
print(f"warnings   : {len(caught)} (the Hessian is negative somewhere: floored at 1e-6)")
print(f"finite differences: {focal.check()}")
logistic = boosting.objective(LOGISTIC, hessian_floor=1e-16)

# Plain logistic loss by lossdsl equals the built-in (same data, seed, start).
start = logistic.base_score(y_train)
params = {"max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1}
train = xgb.DMatrix(x_train, label=y_train, base_margin=np.full(len(y_train), start))
ours = xgb.train(params, train, 30, obj=logistic).predict(train, output_margin=True)
builtin = xgb.train(dict(params, objective="binary:logistic"), train, 30).predict(
    train, output_margin=True)
gap = float(np.max(np.abs(ours - builtin)))
print(f"best constant margin (logistic): {start:.4f} = logit(mean(y)) = "
      f"{np.log(y_train.mean() / (1 - y_train.mean())):.4f}")
print(f"lossdsl logistic vs binary:logistic, max |margin difference|: {gap:.2e}")
assert gap < 1e-5

scores = {}
for name, obj in (("logistic", logistic), ("focal", focal)):
    booster = xgb.train(dict(params, base_score=obj.base_score(y_train)),
                        xgb.DMatrix(x_train, label=y_train), 30, obj=obj,
                        custom_metric=obj.metric)
    margin = booster.predict(xgb.DMatrix(x_test), output_margin=True)
    scores["xgboost", name] = balanced_accuracy_score(y_test, margin > 0)

    start = np.full(len(y_train), obj.base_score(y_train))
    lgb_params = {"objective": obj, "num_leaves": 8, "learning_rate": 0.3, "seed": 0,
                  "num_threads": 1, "verbose": -1, "deterministic": True}
    model = lgb.train(lgb_params, lgb.Dataset(x_train, label=y_train, init_score=start), 30)
    # LightGBM's prediction leaves out init_score: add the starting margin back.
    margin = model.predict(x_test, raw_score=True) + start[0]
    scores["lightgbm", name] = balanced_accuracy_score(y_test, margin > 0)

print("held-out balanced accuracy (is it an 8?)")
for library in ("xgboost", "lightgbm"):
    print(f"  {library:<9} logistic {scores[library, 'logistic']:.4f}   "
          f"focal {scores[library, 'focal']:.4f}")
assert scores["xgboost", "focal"] > scores["xgboost", "logistic"]
