#!/usr/bin/env python3
"""scikit-learn's test scores for every fhe-ml family, on fhe-ml's own splits and features.

For each (family, dataset) of FAMILIES this reads fhe-ml's split and encoded feature names
(`fhe-ml split [--regression]`: the same rows and one-hot columns `eval` uses), standardizes
the features on the training rows (as fhe-ml does), fits the scikit-learn estimator that fhe-ml's
family mirrors, and writes its test score to bench/results/sklearn-reference.json:
accuracy for classifiers, R² for least squares and trees, D² (fraction of deviance explained,
scikit-learn's `score`) for Poisson, Gamma and Tweedie regression. tests/quality.rs holds
fhe-ml's float models to these figures (accuracy: at most one test row below; R² and D²: at
most 0.01 below).

Estimators run with scikit-learn's defaults except: iterations raised where the default stops
before convergence (logistic regression, LinearSVC, GLMs), and trees and forests at fhe-ml's
default shape (depth 4; 10 trees), which fhe-ml must keep small to stay fast under encryption.

Run through scripts/sklearn-reference (a pinned venv).
"""
import argparse
import csv
import datetime
import json
import os
import subprocess
import sys

import numpy as np
import scipy
import sklearn
from sklearn import ensemble, linear_model, svm, tree
from sklearn.preprocessing import StandardScaler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("FHE_ML_BIN", os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "fhe-ml"))

# family: (task, estimator factory, datasets). GLMs are scored by D², the rest as sklearn scores.
FAMILIES = {
    "logistic": ("classification", lambda: linear_model.LogisticRegression(max_iter=10000),
                 ["breast_cancer", "digits"]),
    "svm": ("classification", lambda: svm.LinearSVC(max_iter=100000, random_state=0),
            ["breast_cancer", "digits"]),
    "tree": ("classification", lambda: tree.DecisionTreeClassifier(max_depth=4, random_state=0),
             ["breast_cancer", "digits"]),
    "forest": ("classification", lambda: ensemble.RandomForestClassifier(
        n_estimators=10, max_depth=4, random_state=0), ["breast_cancer", "digits"]),
    "gbdt": ("classification", lambda: ensemble.GradientBoostingClassifier(random_state=0),
             ["breast_cancer"]),
    "linear": ("regression", linear_model.LinearRegression, ["diabetes", "auto_mpg"]),
    "ridge": ("regression", linear_model.Ridge, ["diabetes", "auto_mpg"]),
    "lasso": ("regression", linear_model.Lasso, ["diabetes", "auto_mpg"]),
    "elasticnet": ("regression", linear_model.ElasticNet, ["diabetes", "auto_mpg"]),
    "poisson": ("glm", lambda: linear_model.PoissonRegressor(max_iter=10000), ["bikeshare"]),
    "gamma": ("glm", lambda: linear_model.GammaRegressor(max_iter=10000),
              ["auto_mpg", "diabetes"]),
    "tweedie": ("glm", lambda: linear_model.TweedieRegressor(
        power=1.5, link="log", max_iter=10000), ["bikeshare"]),
    "tree-regressor": ("regression", lambda: tree.DecisionTreeRegressor(
        max_depth=4, random_state=0), ["diabetes", "auto_mpg"]),
    "forest-regressor": ("regression", lambda: ensemble.RandomForestRegressor(
        n_estimators=10, max_depth=4, random_state=0), ["diabetes", "auto_mpg"]),
    "gbdt-regressor": ("regression", lambda: ensemble.GradientBoostingRegressor(random_state=0),
                       ["diabetes", "auto_mpg"]),
}


def encoded(dataset, regression):
    """fhe-ml's split and its one-hot features of data/{dataset}.csv."""
    path = os.path.join(ROOT, "data", f"{dataset}.csv")
    args = [BIN, "split", "--data", path] + (["--regression"] if regression else [])
    split = json.loads(subprocess.check_output(args))
    rows = list(csv.DictReader(open(path)))
    x = np.array([[float(r[n]) if "=" not in n else float(r[n.split("=", 1)[0]] == n.split("=", 1)[1])
                   for n in split["features"]] for r in rows])
    y = np.array([float(r["target"]) for r in rows])
    if not regression:
        y = y.astype(int)
    return x, y, split


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results",
                                                  "sklearn-reference.json"))
    ap.add_argument("--families", help="comma-separated subset of the families")
    args = ap.parse_args()
    families = args.families.split(",") if args.families else list(FAMILIES)
    rows = []
    for family in families:
        task, make, datasets = FAMILIES[family]
        for dataset in datasets:
            x, y, split = encoded(dataset, task != "classification")
            train, test = split["train"], split["test"]
            scaler = StandardScaler().fit(x[train])
            xtr, xte = scaler.transform(x[train]), scaler.transform(x[test])
            model = make().fit(xtr, y[train])
            metric = {"classification": "accuracy", "regression": "r2", "glm": "d2"}[task]
            score = float(model.score(xte, y[test]))
            rows.append({"family": family, "dataset": dataset, "estimator": repr(model),
                         "metric": metric, "score": score, "n_test": len(test)})
            print(f"{family:<17}{dataset:<15}{metric:<9}{score:.4f}  {model!r}", flush=True)
    out = {"generated_by": "scripts/sklearn-reference",
           "date": datetime.date.today().isoformat(),
           "versions": {"python": sys.version.split()[0], "scikit-learn": sklearn.__version__,
                        "numpy": np.__version__, "scipy": scipy.__version__},
           "split": {"seed": 42, "test_fraction": 0.2}, "rows": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
