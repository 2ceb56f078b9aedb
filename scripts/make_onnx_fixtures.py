"""Writes the ONNX fixtures of `fhe_ml::import` into tests/fixtures/onnx/ (run through
scripts/make-onnx-fixtures, which pins the exporters in their own venv).

Every model is trained on the train rows of `fhe-ml split` (seed 42, 20% test), so fhe-ml's
`eval --onnx` calibrates on the rows the framework trained on and is scored on the rows the
framework never saw. For each model NAME it writes:
  NAME.onnx       the file the real exporter wrote (skl2onnx, onnxmltools, torch.onnx.export);
  NAME.json       the framework's own predictions on the test rows: `labels` (classifiers),
                  `scores` (predict_proba, or the regression's predict), in float64, plus the
                  exporter versions.
Data: data/breast_cancer.csv, data/digits.csv, data/diabetes.csv (written here from
scikit-learn's bundled copy when missing).
"""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxmltools
import skl2onnx
import sklearn
import xgboost
from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat
from skl2onnx import to_onnx
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from xgboost import XGBClassifier, XGBRegressor

# `--no-torch` (with --check only): the PyTorch fixtures are neither written nor compared, so the
# check runs in a light venv (about 0.4 GB instead of 7 GB with PyTorch's CUDA libraries).
NO_TORCH = "--no-torch" in sys.argv
if NO_TORCH and "--check" not in sys.argv:
    sys.exit("--no-torch only goes with --check: the committed files need every exporter")
if not NO_TORCH:
    import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, "tests", "fixtures", "onnx")
OUT = os.environ.get("ONNX_FIXTURES_OUT", COMMITTED)
FHE_ML = os.environ.get("FHE_ML_BIN", os.path.join(ROOT, "target", "release", "fhe-ml"))
VERSIONS = {
    "scikit-learn": sklearn.__version__,
    "skl2onnx": skl2onnx.__version__,
    "xgboost": xgboost.__version__,
    "onnxmltools": onnxmltools.__version__,
    "torch": None if NO_TORCH else torch.__version__.split("+")[0],
    "onnx": onnx.__version__,
}
# skl2onnx's default opset for ai.onnx.ml 3 and ai.onnx 15 keep the files readable by the
# ONNX runtimes people deploy; fixed so the committed files do not move with a new exporter.
OPSET = {"": 15, "ai.onnx.ml": 3}


def diabetes_csv():
    path = os.path.join(ROOT, "data", "diabetes.csv")
    if not os.path.exists(path):
        d = load_diabetes(scaled=False)
        names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
        with open(path, "w") as f:
            f.write(",".join(names + ["target"]) + "\n")
            for row, y in zip(d.data, d.target):
                f.write(",".join(f"{v:g}" for v in row) + f",{y:g}\n")
    return path


def load(name, regression=False):
    path = diabetes_csv() if name == "diabetes" else os.path.join(ROOT, "data", f"{name}.csv")
    data = np.genfromtxt(path, delimiter=",", skip_header=1)
    args = [FHE_ML, "split", "--data", path, "--seed", "42", "--test-fraction", "0.2"]
    if regression:
        args.append("--regression")
    split = json.loads(subprocess.check_output(args))
    train, test = split["train"], split["test"]
    x, y = data[:, :-1], data[:, -1]
    if not regression:
        y = y.astype(np.int64)
    return x[train], y[train], x[test], y[test], test


def write(name, onnx_model, dataset, test_rows, labels, scores, exporter):
    # As the exporter wrote it, less the stack traces torch's dynamo exporter attaches to each
    # node (paths of this machine; no effect on the graph).
    for node in onnx_model.graph.node:
        del node.metadata_props[:]
    with open(os.path.join(OUT, f"{name}.onnx"), "wb") as f:
        f.write(onnx_model.SerializeToString())
    record = {
        "model": name,
        "dataset": dataset,
        "exporter": exporter,
        "versions": VERSIONS,
        "test_rows": [int(i) for i in test_rows],
        "labels": None if labels is None else [int(v) for v in labels],
        "scores": [[float(v) for v in np.atleast_1d(r)] for r in scores],
    }
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"  {name}.onnx ({os.path.getsize(os.path.join(OUT, name + '.onnx'))} bytes)")


def sklearn_model(name, model, dataset, regression=False):
    xtr, ytr, xte, yte, rows = load(dataset, regression)
    model.fit(xtr, ytr)
    # skl2onnx 1.20 gives a classifier pipeline's last step a `zipmap` option that LinearSVC's
    # converter refuses; naming the step's own (empty) options avoids it.
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(last): {}} if isinstance(last, LinearSVC) else None
    onx = to_onnx(model, xtr[:1].astype(np.float32), target_opset=OPSET, options=options)
    if regression:
        labels, scores = None, model.predict(xte)
    else:
        labels = model.predict(xte)
        scores = (
            model.predict_proba(xte)
            if hasattr(model, "predict_proba")
            else model.decision_function(xte)
        )
    write(name, onx, dataset, rows, labels, scores, "skl2onnx")


def xgb_model(name, model, dataset, regression=False):
    xtr, ytr, xte, yte, rows = load(dataset, regression)
    model.fit(xtr, ytr)
    onx = onnxmltools.convert_xgboost(
        model, initial_types=[("input", MlFloat([None, xtr.shape[1]]))], target_opset=15
    )
    if regression:
        labels, scores = None, model.predict(xte)
    else:
        labels, scores = model.predict(xte), model.predict_proba(xte)
    write(name, onx, dataset, rows, labels, scores, "onnxmltools")


def mlp(d, hidden, classes):
    """A PyTorch MLP as people write one: Flatten, Linear, ReLU, Linear."""

    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Flatten(),
                torch.nn.Linear(d, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, classes),
            )

        def forward(self, x):
            return self.net(x)

    # As a module-level class would be named (the dynamo exporter records class names).
    Mlp.__qualname__ = "Mlp"
    return Mlp()


def torch_model(name, dataset, hidden, dynamo):
    xtr, ytr, xte, yte, rows = load(dataset)
    torch.manual_seed(0)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    # The scaler lives in the client's data pipeline for a PyTorch user; here it is folded
    # into the exported network's first layer so the file reads raw features.
    model = mlp(xtr.shape[1], hidden, int(ytr.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xs = torch.tensor((xtr - mu) / sd, dtype=torch.float32)
    ys = torch.tensor(ytr)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xs), ys)
        loss.backward()
        opt.step()
    with torch.no_grad():
        first = model.net[1]
        w = first.weight / torch.tensor(sd, dtype=torch.float32)
        first.bias -= (w * torch.tensor(mu, dtype=torch.float32)).sum(1)
        first.weight.copy_(w)
        logits = model(torch.tensor(xte, dtype=torch.float32)).double().numpy()
    path = os.path.join(OUT, f"{name}.onnx")
    example = (torch.tensor(xtr[:1], dtype=torch.float32),)
    kwargs = dict(input_names=["input"], output_names=["logits"])
    if dynamo:
        program = torch.onnx.export(model, example, dynamo=True, **kwargs)
        onx = program.model_proto
    else:
        torch.onnx.export(
            model, example, path, dynamo=False, opset_version=15,
            dynamic_axes={"input": {0: "batch"}}, **kwargs,
        )
        onx = onnx.load(path)
    write(name, onx, dataset, rows, logits.argmax(1), logits, "torch.onnx.export"
          + (" (dynamo)" if dynamo else " (TorchScript)"))


def unsupported():
    """Two graphs the importer must refuse with one line naming the node: a hidden Sigmoid and
    a convolution (random weights: only their structure matters)."""
    torch.manual_seed(0)
    for name, model, example in [
        ("unsupported-sigmoid-mlp",
         torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Sigmoid(), torch.nn.Linear(16, 10)),
         torch.zeros(1, 64)),
        ("unsupported-conv",
         torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(72, 10)),
         torch.zeros(1, 1, 8, 8)),
    ]:
        path = os.path.join(OUT, f"{name}.onnx")
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=15,
                          input_names=["input"], output_names=["logits"])
        print(f"  {name}.onnx ({os.path.getsize(path)} bytes, refused by design)")


def main():
    os.makedirs(OUT, exist_ok=True)
    print(f"writing {OUT} with {VERSIONS}")
    sklearn_model("bc-logistic", make_pipeline(StandardScaler(), LogisticRegression()),
                  "breast_cancer")
    sklearn_model("digits-logistic",
                  make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=2000)), "digits")
    sklearn_model("bc-linear-svc", make_pipeline(StandardScaler(), LinearSVC()),
                  "breast_cancer")
    sklearn_model("diabetes-linear", LinearRegression(), "diabetes", regression=True)
    sklearn_model("diabetes-ridge", make_pipeline(StandardScaler(), Ridge(alpha=1.0)),
                  "diabetes", regression=True)
    sklearn_model("bc-mlp", make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=1000, random_state=0)), "breast_cancer")
    sklearn_model("diabetes-mlp", make_pipeline(
        StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), max_iter=3000, random_state=0)),
        "diabetes", regression=True)
    sklearn_model("bc-tree", DecisionTreeClassifier(max_depth=4, random_state=0),
                  "breast_cancer")
    sklearn_model("bc-forest", RandomForestClassifier(10, max_depth=4, random_state=0),
                  "breast_cancer")
    sklearn_model("digits-forest", RandomForestClassifier(10, max_depth=5, random_state=0),
                  "digits")
    sklearn_model("diabetes-tree", DecisionTreeRegressor(max_depth=4, random_state=0),
                  "diabetes", regression=True)
    sklearn_model("diabetes-forest", RandomForestRegressor(10, max_depth=4, random_state=0),
                  "diabetes", regression=True)
    xgb_model("bc-xgboost", XGBClassifier(n_estimators=20, max_depth=3, random_state=0),
              "breast_cancer")
    xgb_model("diabetes-xgboost", XGBRegressor(n_estimators=20, max_depth=3, random_state=0),
              "diabetes", regression=True)
    if NO_TORCH:
        print("PyTorch fixtures not regenerated (--no-torch): digits-torch-mlp, "
              "digits-torch-mlp-dynamo and the two refused files")
        return
    torch_model("digits-torch-mlp", "digits", 32, dynamo=False)
    torch_model("digits-torch-mlp-dynamo", "digits", 32, dynamo=True)
    unsupported()


def canonical(path):
    """A model's bytes up to what exporters vary from run to run: the graph's name
    (onnxmltools draws a random one) and the order of the opset imports (skl2onnx)."""
    m = onnx.load(path)
    m.graph.name = ""
    opsets = sorted((o.domain, o.version) for o in m.opset_import)
    del m.opset_import[:]
    for domain, version in opsets:
        m.opset_import.add(domain=domain, version=version)
    return m.SerializeToString()


def same_model(a_path, b_path):
    return canonical(a_path) == canonical(b_path)


def check(fresh):
    """Compares the files just written into `fresh` with the committed ones."""
    bad = []
    for name in sorted(os.listdir(fresh)):
        new, old = os.path.join(fresh, name), os.path.join(COMMITTED, name)
        if not os.path.exists(old):
            bad.append(f"{name}: not committed")
        elif name.endswith(".onnx") and not same_model(new, old):
            bad.append(f"{name}: the exporter now writes another model")
        elif name.endswith(".json"):
            a, b = json.load(open(new)), json.load(open(old))
            if a["labels"] != b["labels"] or any(
                abs(x - y) > 1e-9 * max(1.0, abs(y))
                for ra, rb in zip(a["scores"], b["scores"]) for x, y in zip(ra, rb)
            ) or len(a["scores"]) != len(b["scores"]):
                bad.append(f"{name}: the framework's predictions changed")
    for name in bad:
        print(f"MISMATCH {name}")
    print(f"checked {len(os.listdir(fresh))} files: {len(bad)} mismatch(es)")
    return 1 if bad else 0


if __name__ == "__main__":
    code = main()
    if "--check" in sys.argv:
        code = check(OUT)
    sys.exit(code)
