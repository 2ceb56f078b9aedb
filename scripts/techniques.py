#!/usr/bin/env python3
"""Privacy techniques side by side on fhe-ml's own splits and model shapes (issue 20).

Workloads: breast_cancer-logistic, digits-logistic and digits-mlp (64-32-10, ReLU), each on
fhe-ml's 80/20 split (seed 42, stratified; from `fhe-ml split`) with the one-hot features
fhe-ml encodes and a standard scaler fitted on the training rows, exactly as
scripts/sklearn_reference.py does (its `encoded` is imported, not copied).

Techniques, one list of rows (schema in scripts/check_techniques.py):
- plaintext: the float models. fhe-ml's own (`fhe-ml eval --json`, accuracy.plain) and
  scikit-learn's (LogisticRegression as scripts/sklearn_reference.py fits it; MLPClassifier
  64-32-10 ReLU, the weights the MPC rows use), with single-row predict latency measured here.
- FHE: `fhe-ml eval --json` (scores mode): encrypted accuracy, median single-row
  encrypt + infer + decrypt latency, ciphertext bytes in + out; a second row per workload for
  the parallel batch (1000 / throughput_per_s).
- DP: IBM diffprivlib's LogisticRegression (objective perturbation) at each ε, mean and std of
  the test accuracy over seeds; two data_norm policies (see NOTES). DP changes training only,
  so the latency is plain single-row inference, measured, and the query travels in the clear.
- MPC: CrypTen, two parties as two processes on loopback (gloo over 127.0.0.1), the client
  secret-sharing its rows and the server its weights; the scores are revealed to the client.
  Beaver triples from CrypTen's default trusted first party (TFP) and, in a second set of rows,
  from a trusted third party (TTP, a dealer process). Batch and single-row latency,
  CrypTen's own byte and round counters, accuracy. Runs in its own venv (PyTorch) through
  `--mpc-python`; `--mpc-worker` is that process's entry point.
- FL: Flower FedAvg of the logistic regression over simulated clients (IID, and non-IID:
  Dirichlet α = 0.5 over labels), real gRPC server and clients on loopback; the server scores
  the global model on the test split after each round; bytes counted from the serialized
  Parameters tensors sent down and up.
- TEE: not measured (no hardware): published overhead figures with their sources.

Writes techniques.json and techniques.csv into --out (default bench/results; with --smoke,
${FHE_ML_CACHE:-~/.cache/fhe-ml}/techniques-smoke). Run through scripts/techniques.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.environ.get("FHE_ML_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "fhe-ml"))
BIN = os.environ.get("FHE_ML_BIN", os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(CACHE, "target")), "release", "fhe-ml"))

ROW_KEYS = ["technique", "library", "workload", "setting", "epsilon", "round", "partition",
            "clients", "accuracy", "accuracy_std", "seeds", "latency_ms_per_sample",
            "bytes_per_sample", "comm_rounds_per_sample", "bytes_total", "measured", "source"]

# workload: (dataset, fhe-ml eval arguments, model kind)
WORKLOADS = {
    "breast_cancer-logistic": ("breast_cancer", ["--model", "logistic"], "logistic"),
    "digits-logistic": ("digits", ["--model", "logistic"], "logistic"),
    "digits-mlp": ("digits", ["--model", "mlp", "--hidden", "32"], "mlp"),
}
LOGISTIC = ["breast_cancer-logistic", "digits-logistic"]
EPSILONS = [0.1, 0.5, 1.0, 2.0, 5.0, 10.0]
SMOKE_EPSILONS = [1.0, 10.0]
DIRICHLET_ALPHA = 0.5
FL_LOCAL_EPOCHS = 5

NOTES = [
    "Every measured row uses fhe-ml's split (`fhe-ml split`: seed 42, 20% test, stratified) and "
    "features standardized on the training rows, as scripts/sklearn_reference.py.",
    "latency_ms_per_sample is the median over test rows scored one at a time, except rows whose "
    "setting says 'batch': there it is the batch's wall time divided by its rows.",
    "bytes_total is what scoring the evaluated test rows exchanges (FHE: plus the evaluation "
    "key, uploaded once), and for FL the cumulative training traffic through that round. "
    "Plaintext and DP rows send the query in the clear: n_features x 8 bytes (float64) per row, "
    "one round trip, a figure computed rather than measured on a network.",
    "DP: diffprivlib's LogisticRegression clips each training row to data_norm and calibrates "
    "its noise to it. data_norm is chosen from the standardized training rows (their 90th "
    "percentile row norm, or the maximum, which is diffprivlib's own fallback and warns with "
    "PrivacyLeakWarning): a bound derived from the private data leaks a little about it, "
    "which this DP accounting does not cover; diffprivlib's documentation says data_norm "
    "should be chosen independently of the data. For 10 classes diffprivlib fits one-vs-rest "
    "models with epsilon / 10 each, so the total ε of a digits row is the one shown. "
    "diffprivlib's defaults otherwise (C = 1; max_iter raised to 1000): no hyperparameter "
    "was tuned, which would spend privacy budget too. accuracy_std: over seeds, ddof 0.",
    "MPC: CrypTen 0.4.1 (its last release, December 2022) imports "
    "torch.onnx._internal.registration, which PyTorch 2.9 moved to "
    "torch.onnx._internal.torchscript_exporter.registration; the worker aliases the old name "
    "before importing crypten (only CrypTen's ONNX model converter uses it, and it is not used "
    "here). CrypTen is installed without its declared dependencies (it requires the PyPI "
    "package 'sklearn', which refuses to install); the modules it imports are pinned instead.",
    "MPC bytes and rounds are CrypTen's communicator counters (cfg.communicator.verbose) of "
    "party 0, the client: with two parties every party-to-party message involves it, so its "
    "count (sent + received) is the whole party-to-party traffic, 8 bytes per ring element; "
    "with TTP it also counts the dealer's messages to it (Python objects counted by "
    "sys.getsizeof, CrypTen's approximation). Secret-sharing inputs and weights costs nothing "
    "on the wire (pseudo-random zero shares from seeds exchanged at start-up). With TFP, "
    "party 0 generates the correlated randomness (Beaver triples) itself and shares it mostly "
    "through those seeds, so it costs little on the wire: CrypTen's default, not secure "
    "against party 0 (here the client), which could unmask the weights; TTP moves this to a "
    "dealer process trusted by both. Each party runs with one torch thread; the batch time is "
    "the median of 3 runs.",
    "FL: Flower's current simulation engine needs Ray (the flwr[simulation] extra), so the "
    "clients run as threads of one process, each with its own gRPC connection to a real "
    "Flower server on 127.0.0.1 (flwr's start_server / start_client: deprecated since 1.13 "
    "for the SuperLink and SuperNode processes, still shipped in 1.42 and running here). "
    "FL changes training only: scoring is plaintext and local, as in the plaintext rows. "
    "bytes_total counts the serialized Parameters tensors (numpy .npy bytes) sent to and "
    "from every client each round, not gRPC framing.",
    "TEE rows are published figures for other, larger workloads (LLMs, CNNs), not measured "
    "here: no TEE hardware. For models as small as these, enclave entry and exit and "
    "attestation, which those figures amortize, may dominate.",
]

TEE_SOURCES = [
    ("Intel TDX and SGX (CPU TEE, AMX)",
     "latency < 1.2×, throughput loss < 10%: Llama2 7B/13B/70B inference (published, not measured)",
     "Marcin Chrapek, Marcin Copik, Etienne Mettaz, Torsten Hoefler. Confidential LLM Inference: "
     "Performance and Cost Across CPU and GPU TEEs. arXiv:2509.18886, 2025. "
     "https://arxiv.org/abs/2509.18886 (CPU TEEs: under 10% throughput and 20% latency overhead)"),
    ("NVIDIA H100 confidential computing (GPU TEE)",
     "throughput loss 4–8%: Llama2 inference, shrinking with batch and input size "
     "(published, not measured)",
     "Marcin Chrapek, Marcin Copik, Etienne Mettaz, Torsten Hoefler. Confidential LLM Inference: "
     "Performance and Cost Across CPU and GPU TEEs. arXiv:2509.18886, 2025. "
     "https://arxiv.org/abs/2509.18886 (H100 CC: throughput penalties of 4-8%)"),
    ("NVIDIA H100 confidential computing (GPU TEE)",
     "overhead < 7% (< 1.07×) for most typical LLM queries, mostly CPU-GPU transfer "
     "(published, not measured)",
     "Jianwei Zhu, Hang Yin, Peng Deng, Aline Almeida, Shunfan Zhou. Confidential Computing on "
     "NVIDIA Hopper GPUs: A Performance Benchmark Study. arXiv:2409.03992, 2024. "
     "https://arxiv.org/abs/2409.03992"),
    ("NVIDIA H100 confidential computing (GPU TEE)",
     "batch LLM inference swapping models in and out of GPU memory: latency 20–30% lower and "
     "throughput 45–70% higher without confidential computing (published, not measured)",
     "Antonio Martínez Ibarra, Julian James Stephen, Aurora González Vidal, K. R. Jayaram, "
     "Antonio Fernando Skarmeta Gómez. Performance of Confidential Computing GPUs. "
     "arXiv:2505.16501, 2025. https://arxiv.org/abs/2505.16501"),
    ("TEE with limited secure memory (DNN inference)",
     "1.09–2× latency with the paper's partitioning and compression; up to 26× unmodified "
     "(published, not measured)",
     "Jean-Baptiste Truong, William Gallagher, Tian Guo, Robert J. Walls. Memory-Efficient Deep "
     "Learning Inference in Trusted Execution Environments. arXiv:2104.15109, 2021. "
     "https://arxiv.org/abs/2104.15109"),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def row(**kv):
    unknown = set(kv) - set(ROW_KEYS)
    assert not unknown, unknown
    r = {k: None for k in ROW_KEYS}
    r["measured"] = True
    r.update(kv)
    return r


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def median_ms(fn, items):
    """Median wall time of fn(item) over items, in ms, after one untimed call."""
    fn(items[0])
    times = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


# ---------------------------------------------------------------- data


def load(dataset):
    """fhe-ml's split of data/{dataset}.csv, standardized on its training rows."""
    import numpy as np
    import sklearn_reference as ref
    from sklearn.preprocessing import StandardScaler
    ref.BIN = BIN
    x, y, split = ref.encoded(dataset, False)
    train, test = np.array(split["train"]), np.array(split["test"])
    scaler = StandardScaler().fit(x[train])
    return scaler.transform(x[train]), y[train], scaler.transform(x[test]), y[test]


# ---------------------------------------------------------------- fhe-ml: FHE and its float model


def fhe_rows(limits, version, data):
    rows = []
    for workload, (dataset, args, _) in WORKLOADS.items():
        limit = limits.get(workload)
        cmd = [BIN, "eval", "--data", os.path.join(ROOT, "data", f"{dataset}.csv"), *args, "--json"]
        if limit:
            cmd += ["--limit", str(limit)]
        log(f"FHE: {' '.join(cmd[1:])}")
        v = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        n = v["n_test"]
        b = v["bytes"]
        per = b["input_ciphertext"] + b["output_ciphertext"]
        rows_text = (f"all {n} test rows" if n == len(data[dataset][3])
                     else f"the first {n} of {len(data[dataset][3])} test rows")
        key = b["evaluation_key"]
        key_text = f", evaluation key {key / 2**20:.1f} MiB once" if key else ", no evaluation key"
        key_text += f"; quantized clear twin's accuracy {v['accuracy']['quantized']:.4f}"
        if v.get("noise"):  # bootstrapped models: labels may vary run to run (TFHE noise)
            key_text += (f", expected label agreement with it "
                         f"{v['noise']['expected_label_agreement']:.4f} (TFHE noise)")
        rows.append(row(technique="plaintext", library=version, workload=workload,
                        setting=f"fhe-ml's float model (eval accuracy.plain), {rows_text}",
                        accuracy=v["accuracy"]["plain"], source=None))
        common = dict(technique="FHE", library=version, workload=workload,
                      accuracy=v["accuracy"]["encrypted"], bytes_per_sample=float(per),
                      comm_rounds_per_sample=1.0, bytes_total=float(key + n * per))
        rows.append(row(**common,
                        setting=f"{v['output']} mode, {v['bits']}-bit, one row at a time "
                                f"(median encrypt+infer+decrypt), {rows_text}{key_text}; "
                                f"{v['architecture']}",
                        latency_ms_per_sample=v["latency_ms"]["total"]))
        rows.append(row(**common,
                        setting=f"{v['output']} mode, batch: rows in parallel on "
                                f"{os.cpu_count()} cores (1000 / throughput_per_s), {rows_text}",
                        latency_ms_per_sample=1000.0 / v["throughput_per_s"]))
    return rows


# ---------------------------------------------------------------- plaintext (scikit-learn)


def train_plain(data):
    """The float models of every workload: {workload: (model, xte, yte)}."""
    import warnings
    import sklearn_reference as ref
    from sklearn.neural_network import MLPClassifier
    models = {}
    for workload, (dataset, _, kind) in WORKLOADS.items():
        xtr, ytr, xte, yte = data[dataset]
        if kind == "logistic":
            model = ref.FAMILIES["logistic"][1]()  # LogisticRegression(max_iter=10000)
        else:
            model = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", max_iter=2000,
                                  random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(xtr, ytr)
        models[workload] = (model, xte, yte)
    return models


def plain_rows(models, sklearn_version):
    rows = []
    for workload, (model, xte, yte) in models.items():
        lat = median_ms(lambda i: model.predict(xte[i:i + 1]), list(range(len(yte))))
        d = xte.shape[1]
        rows.append(row(technique="plaintext", library=f"scikit-learn {sklearn_version}",
                        workload=workload,
                        setting=f"{model!r}" + (", 64-32-10 ReLU" if "mlp" in workload else "") +
                                f", float64, all {len(yte)} test rows, query in the clear",
                        accuracy=float(model.score(xte, yte)), latency_ms_per_sample=lat,
                        bytes_per_sample=float(d * 8), comm_rounds_per_sample=1.0,
                        bytes_total=float(len(yte) * d * 8)))
    return rows


# ---------------------------------------------------------------- DP (diffprivlib)


def dp_rows(data, epsilons, seeds, version):
    import warnings
    import numpy as np
    from diffprivlib.models import LogisticRegression
    rows = []
    for workload in LOGISTIC:
        xtr, ytr, xte, yte = data[WORKLOADS[workload][0]]
        norms = np.linalg.norm(xtr, axis=1)
        d = xte.shape[1]
        for policy, norm in (("90th percentile", float(np.percentile(norms, 90))),
                             ("maximum", float(norms.max()))):
            how = (f"data_norm = {policy} of the training rows' norms ({norm:.2f})" +
                   (", rows above it clipped" if policy != "maximum" else ", no row clipped"))
            for eps in epsilons:
                accs, first = [], None
                for seed in range(seeds):
                    model = LogisticRegression(epsilon=eps, data_norm=norm, max_iter=1000,
                                               random_state=seed)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.fit(xtr, ytr)
                    accs.append(float(model.score(xte, yte)))
                    if first is None:
                        first = model
                lat = median_ms(lambda i: first.predict(xte[i:i + 1]), list(range(len(yte))))
                log(f"DP {workload} {policy} ε={eps}: {np.mean(accs):.4f} ± {np.std(accs):.4f}")
                rows.append(row(technique="DP", library=f"diffprivlib {version}",
                                workload=workload,
                                setting=f"ε = {eps:g}, {how}; {seeds} seeds, all {len(yte)} "
                                        f"test rows; inference plain, query in the clear",
                                epsilon=float(eps), accuracy=float(np.mean(accs)),
                                accuracy_std=float(np.std(accs)), seeds=seeds,
                                latency_ms_per_sample=lat, bytes_per_sample=float(d * 8),
                                comm_rounds_per_sample=1.0, bytes_total=float(len(yte) * d * 8)))
    return rows


# ---------------------------------------------------------------- FL (Flower)


def partition(y, clients, iid, seed):
    """Row indices of each client: a shuffled even split, or Dirichlet(α) label shares."""
    import numpy as np
    rng = np.random.default_rng(seed)
    if iid:
        return np.array_split(rng.permutation(len(y)), clients)
    for _ in range(1000):  # redraw until every client holds at least 5 rows
        parts = [[] for _ in range(clients)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet([DIRICHLET_ALPHA] * clients)
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= 5:
            return [np.array(sorted(p)) for p in parts]
    raise RuntimeError("no Dirichlet partition gave every client 5 rows")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fl_run(xtr, ytr, xte, yte, clients, rounds, iid, seed):
    """One federated training: [(accuracy, cumulative bytes) after each round]."""
    import logging
    import threading
    import warnings
    import numpy as np
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # Flower sends usage events otherwise
    import flwr
    from flwr.client import NumPyClient
    from flwr.common import ndarrays_to_parameters
    from flwr.compat.client.app import start_client
    from flwr.compat.server.app import start_server
    from flwr.server.strategy import FedAvg
    from sklearn.linear_model import SGDClassifier
    logging.getLogger("flwr").setLevel(logging.ERROR)  # its deprecation warnings and round logs
    classes = np.unique(ytr)
    width = 1 if len(classes) == 2 else len(classes)

    def model():
        return SGDClassifier(loss="log_loss", alpha=1e-4, learning_rate="constant", eta0=0.01,
                             random_state=seed)

    class Client(NumPyClient):
        def __init__(self, idx):
            self.x, self.y = xtr[idx], ytr[idx]

        def fit(self, parameters, config):
            m = model()
            m.coef_, m.intercept_ = parameters[0].copy(), parameters[1].copy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(FL_LOCAL_EPOCHS):
                    m.partial_fit(self.x, self.y, classes=classes)
            return [m.coef_, m.intercept_], len(self.y), {}

    sent = [0]
    history = []

    class CountingFedAvg(FedAvg):
        def configure_fit(self, server_round, parameters, client_manager):
            out = super().configure_fit(server_round, parameters, client_manager)
            sent[0] += sum(len(t) for _, ins in out for t in ins.parameters.tensors)
            return out

        def aggregate_fit(self, server_round, results, failures):
            if failures:
                raise RuntimeError(f"round {server_round}: {len(failures)} clients failed")
            sent[0] += sum(len(t) for _, res in results for t in res.parameters.tensors)
            return super().aggregate_fit(server_round, results, failures)

    def evaluate(server_round, parameters, config):
        if server_round == 0:
            return None
        m = model()
        m.classes_ = classes
        m.coef_, m.intercept_ = parameters
        acc = float((m.predict(xte) == yte).mean())
        history.append((acc, sent[0]))
        return 0.0, {"accuracy": acc}

    init = ndarrays_to_parameters([np.zeros((width, xtr.shape[1])), np.zeros(width)])
    strategy = CountingFedAvg(fraction_fit=1.0, min_fit_clients=clients,
                              min_available_clients=clients, fraction_evaluate=0.0,
                              min_evaluate_clients=0, initial_parameters=init,
                              evaluate_fn=evaluate)
    address = f"127.0.0.1:{free_port()}"
    threads = [threading.Thread(target=start_client, daemon=True,
                                kwargs=dict(server_address=address, client=Client(p).to_client(),
                                            insecure=True, max_retries=50, max_wait_time=60))
               for p in partition(ytr, clients, iid, seed)]
    starter = threading.Timer(0.5, lambda: [t.start() for t in threads])
    starter.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start_server(server_address=address, config=flwr.server.ServerConfig(num_rounds=rounds),
                     strategy=strategy)
    for t in threads:
        t.join(timeout=30)
    if len(history) != rounds:
        raise RuntimeError(f"FL: {len(history)} of {rounds} rounds evaluated")
    return history


def fl_rows(data, clients, rounds, seeds, version):
    import numpy as np
    rows = []
    for workload in LOGISTIC:
        xtr, ytr, xte, yte = data[WORKLOADS[workload][0]]
        for name, iid in (("iid", True), ("non-iid", False)):
            runs = []
            for seed in range(seeds):
                t = time.perf_counter()
                runs.append(fl_run(xtr, ytr, xte, yte, clients, rounds, iid, seed))
                log(f"FL {workload} {name} seed {seed}: final accuracy {runs[-1][-1][0]:.4f}, "
                    f"{runs[-1][-1][1] / 1e6:.2f} MB, {time.perf_counter() - t:.1f} s")
            split = "IID" if iid else f"non-IID (Dirichlet α = {DIRICHLET_ALPHA} over labels)"
            for r in range(rounds):
                accs = [run[r][0] for run in runs]
                total = statistics.mean(run[r][1] for run in runs)
                rows.append(row(technique="FL", library=f"flwr {version}", workload=workload,
                                setting=f"round {r + 1} of {rounds}, {split}, {clients} clients, "
                                        f"FedAvg, {FL_LOCAL_EPOCHS} local SGD epochs "
                                        f"(log loss) per round; mean of {seeds} seeds",
                                round=r + 1, partition=name, clients=clients,
                                accuracy=float(np.mean(accs)), accuracy_std=float(np.std(accs)),
                                seeds=seeds, bytes_total=float(total)))
    return rows


# ---------------------------------------------------------------- MPC (CrypTen), driver side


def mpc_rows(models, rows_limit, single_rows, mpc_python):
    """Runs the CrypTen worker in the MPC venv on the plaintext-trained weights."""
    import numpy as np
    jobs = []
    with tempfile.TemporaryDirectory() as d:
        for workload, (model, xte, yte) in models.items():
            n = min(rows_limit or len(yte), len(yte))
            if hasattr(model, "coefs_"):  # MLPClassifier
                layers = [(model.coefs_[0], model.intercepts_[0]),
                          (model.coefs_[1], model.intercepts_[1])]
            else:
                layers = [(model.coef_.T, model.intercept_)]
            arrays = {"x": xte[:n], "y": yte[:n]}
            for i, (w, b) in enumerate(layers):
                arrays[f"w{i}"], arrays[f"b{i}"] = w, b
            path = os.path.join(d, f"{workload}.npz")
            np.savez(path, **arrays)
            plain = float(model.score(xte[:n], yte[:n]))
            jobs.append({"workload": workload, "npz": path, "layers": len(layers),
                         "single_rows": min(single_rows, n), "plain_accuracy": plain})
        spec, out = os.path.join(d, "jobs.json"), os.path.join(d, "out.json")
        with open(spec, "w") as f:
            json.dump(jobs, f)
        log(f"MPC: {mpc_python} {os.path.basename(__file__)} --mpc-worker")
        worker = subprocess.Popen([mpc_python, os.path.abspath(__file__), "--mpc-worker", spec,
                                   out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        lines = []
        for line in worker.stdout:  # the worker's progress lines; gloo's chatter only on failure
            lines.append(line)
            if line.startswith("MPC "):
                sys.stderr.write(line)
        if worker.wait():
            sys.stderr.write("".join(lines))
            raise RuntimeError(f"the MPC worker failed (exit {worker.returncode})")
        with open(out) as f:
            result = json.load(f)
    rows = []
    lib = f"CrypTen {result['crypten']} (PyTorch {result['torch']})"
    for r in result["results"]:
        n, job = r["n"], next(j for j in jobs if j["workload"] == r["workload"])
        who = ("Beaver triples from a trusted first party (TFP, CrypTen's default: party 0 "
               "generates them, shared mostly through seeds; not secure against party 0)"
               if r["provider"] == "TFP" else
               "Beaver triples from a trusted third party (TTP: a dealer process; its replies to "
               "party 0 counted)")
        base = (f"2 parties on loopback (gloo, 127.0.0.1), {who}; 16-bit fixed point, "
                f"scores revealed to the client; weights trained in plaintext "
                f"(plaintext accuracy {job['plain_accuracy']:.4f} on these rows)")
        rows.append(row(technique="MPC", library=lib, workload=r["workload"],
                        setting=f"batch of {n} test rows; {base}",
                        accuracy=r["batch_accuracy"],
                        latency_ms_per_sample=r["batch_ms"] / n,
                        bytes_per_sample=r["batch_bytes"] / n,
                        comm_rounds_per_sample=r["batch_rounds"] / n,
                        bytes_total=float(r["batch_bytes"])))
        m = r["single_n"]
        rows.append(row(technique="MPC", library=lib, workload=r["workload"],
                        setting=f"one row at a time (median), the first {m} test rows; {base}",
                        accuracy=r["single_accuracy"],
                        latency_ms_per_sample=r["single_median_ms"],
                        bytes_per_sample=r["single_bytes"] / m,
                        comm_rounds_per_sample=r["single_rounds"] / m,
                        bytes_total=float(r["single_bytes"])))
    return rows, result


# ---------------------------------------------------------------- MPC (CrypTen), worker side
# Runs in the MPC venv (torch, crypten, numpy only): no scikit-learn here.


def _crypten():
    import importlib
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    try:
        import torch.onnx._internal.registration  # noqa: F401  (PyTorch < 2.9)
    except ImportError:  # PyTorch 2.9 moved it; CrypTen 0.4.1 imports the old name
        sys.modules["torch.onnx._internal.registration"] = importlib.import_module(
            "torch.onnx._internal.torchscript_exporter.registration")
    import crypten
    return torch, crypten


def _party(layers, x, y, single_n, repeats):
    """One party of a secure inference run (executed in each CrypTen process)."""
    import torch
    import torch.distributed as dist
    import crypten
    import crypten.communicator as comm
    torch.set_num_threads(1)
    c = comm.get()
    rank = c.get_rank()
    x = torch.tensor(x, dtype=torch.float64).float()

    def share(t, src):  # only the source's values are used; the others pass zeros
        t = torch.tensor(t).float()
        return crypten.cryptensor(t if rank == src else torch.zeros_like(t), src=src)

    weights = [(share(w, 1), share(b, 1)) for w, b in layers]  # the server's model

    def infer(rows):
        h = share(rows, 0)  # the client's rows
        for i, (w, b) in enumerate(weights):
            h = h.matmul(w) + b
            if i < len(weights) - 1:
                h = h.relu()
        return h.get_plain_text(dst=0)

    def predict(scores):
        return (scores[:, 0] > 0).long() if scores.shape[1] == 1 else scores.argmax(1)

    def timed(rows):
        dist.barrier(group=c.main_group)  # not counted by CrypTen's counters
        c.reset_communication_stats()
        t = time.perf_counter()
        scores = infer(rows)
        ms = (time.perf_counter() - t) * 1e3
        s = c.get_communication_stats()
        return scores, ms, s["bytes"], s["rounds"]

    infer(x[:1])  # warm-up
    batch = [timed(x) for _ in range(repeats)]
    out = {"rank": rank, "batch_ms": statistics.median(b[1] for b in batch),
           "batch_bytes": batch[0][2], "batch_rounds": batch[0][3]}
    singles = [timed(x[i:i + 1]) for i in range(single_n)]
    out.update(single_median_ms=statistics.median(s[1] for s in singles),
               single_bytes=sum(s[2] for s in singles),
               single_rounds=sum(s[3] for s in singles))
    if rank == 0:
        yt = torch.tensor(y)
        out["batch_accuracy"] = float((predict(batch[0][0]) == yt).float().mean())
        single_pred = torch.cat([predict(s[0]) for s in singles])
        out["single_accuracy"] = float((single_pred == yt[:single_n]).float().mean())
    return out


def mpc_worker(spec, out_path):
    import numpy as np
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # keep the parties on loopback
    torch, crypten = _crypten()
    import crypten.mpc as mpc
    crypten.cfg.communicator.verbose = True  # CrypTen's byte and round counters
    with open(spec) as f:
        jobs = json.load(f)
    results = []
    for provider in ("TFP", "TTP"):
        crypten.cfg.mpc.provider = provider
        for job in jobs:
            a = np.load(job["npz"])
            layers = [(a[f"w{i}"], a[f"b{i}"]) for i in range(job["layers"])]
            t = time.perf_counter()
            parties = mpc.run_multiprocess(world_size=2)(_party)(
                layers, a["x"], a["y"], job["single_rows"], 3)
            if parties is None:
                raise RuntimeError(f"CrypTen: a party failed ({job['workload']}, {provider})")
            p0 = next(p for p in parties if p["rank"] == 0)
            p1 = next(p for p in parties if p["rank"] == 1)
            n = len(a["y"])
            results.append({"workload": job["workload"], "provider": provider, "n": n,
                            "single_n": job["single_rows"], **{k: v for k, v in p0.items()
                                                               if k != "rank"},
                            "party1_batch_bytes": p1["batch_bytes"],
                            "party1_batch_rounds": p1["batch_rounds"]})
            r = results[-1]
            print(f"MPC {provider} {job['workload']}: accuracy {r['batch_accuracy']:.4f}, batch "
                  f"{r['batch_ms'] / n:.3f} ms/row, {r['batch_bytes'] / n:.0f} B/row, single row "
                  f"{r['single_median_ms']:.1f} ms, {r['single_bytes'] / r['single_n']:.0f} B, "
                  f"{r['single_rounds'] / r['single_n']:.0f} rounds "
                  f"({time.perf_counter() - t:.1f} s)", file=sys.stderr, flush=True)
    with open(out_path, "w") as f:
        json.dump({"crypten": _version("crypten"), "torch": torch.__version__.split("+")[0],
                   "results": results}, f)


# ---------------------------------------------------------------- output


def _version(dist):
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def tee_rows():
    return [row(technique="TEE", library=lib, workload=None, setting=setting, measured=False,
                source=source) for lib, setting, source in TEE_SOURCES]


def write(out_dir, result):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "techniques.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(out_dir, "techniques.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=ROW_KEYS)
        w.writeheader()
        w.writerows(result["rows"])
    return path


def summary(rows):
    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"
    last = {}
    for r in rows:
        if r["technique"] == "FL":
            key = (r["workload"], r["partition"])
            last[key] = max(last.get(key, 0), r["round"])
    print(f"{'technique':<10}{'workload':<24}{'accuracy':>9}{'ms/row':>10}{'B/row':>10}"
          f"{'rounds':>8}  setting")
    for r in rows:
        if r["technique"] == "FL" and r["round"] not in (1, last[(r["workload"], r["partition"])]):
            continue  # FL: the first and the last round only
        print(f"{r['technique']:<10}{r['workload'] or '-':<24}{fmt(r['accuracy'], '.4f'):>9}"
              f"{fmt(r['latency_ms_per_sample'], '.3f'):>10}{fmt(r['bytes_per_sample'], '.0f'):>10}"
              f"{fmt(r['comm_rounds_per_sample'], '.3g'):>8}  {r['setting'][:90]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="output folder (default bench/results; with --smoke, "
                                  "$FHE_ML_CACHE/techniques-smoke)")
    ap.add_argument("--smoke", action="store_true", help="the small CI version")
    ap.add_argument("--techniques", default="plaintext,FHE,DP,FL,MPC,TEE",
                    help="comma-separated subset")
    ap.add_argument("--mpc-python", help="the MPC venv's python (torch + crypten)")
    ap.add_argument("--skip-mpc", metavar="REASON", help="record MPC as skipped, with a reason")
    ap.add_argument("--mlp-rows", type=int, default=360,
                    help="digits-mlp test rows under FHE in the full run (each ~0.4 s)")
    ap.add_argument("--mpc-worker", nargs=2, metavar=("JOBS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mpc_worker:
        return mpc_worker(*args.mpc_worker)

    sys.dont_write_bytecode = True  # no scripts/__pycache__ from the imports below
    sys.path.insert(0, HERE)
    import sklearn
    wanted = set(args.techniques.split(","))
    smoke = args.smoke
    out_dir = args.out or (os.path.join(CACHE, "techniques-smoke") if smoke
                           else os.path.join(ROOT, "bench", "results"))
    version = subprocess.run([BIN, "--version"], check=True, capture_output=True,
                             text=True).stdout.strip()  # "fhe-ml 0.1.0"
    skipped, timings, rows, notes = {}, {}, [], list(NOTES)
    mpc_versions = {"crypten": None, "torch": None}

    def timed(name, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        timings[name] = round(time.perf_counter() - t, 1)
        log(f"== {name}: {timings[name]} s")
        return out

    data = {ds: load(ds) for ds in ("breast_cancer", "digits")}
    if "FHE" in wanted or "plaintext" in wanted:
        limits = ({w: (10 if w == "digits-mlp" else 20) for w in WORKLOADS} if smoke
                  else {"digits-mlp": args.mlp_rows})
        fhe = timed("FHE", fhe_rows, limits, version, data)
        rows += [r for r in fhe if r["technique"] in wanted]
    models = timed("train plaintext", train_plain, data)
    if "plaintext" in wanted:
        rows += timed("plaintext", plain_rows, models, sklearn.__version__)
    if "DP" in wanted:
        rows += timed("DP", dp_rows, data, SMOKE_EPSILONS if smoke else EPSILONS,
                      2 if smoke else 10, _version("diffprivlib"))
    if "FL" in wanted:
        rows += timed("FL", fl_rows, data, 3 if smoke else 8, 2 if smoke else 20,
                      1 if smoke else 3, _version("flwr"))
    if "MPC" in wanted:
        if args.skip_mpc or not args.mpc_python:
            skipped["MPC"] = args.skip_mpc or "no --mpc-python given"
            log(f"MPC SKIPPED: {skipped['MPC']}")
        else:
            mpc, raw = timed("MPC", mpc_rows, models, 10 if smoke else None,
                             3 if smoke else 360, args.mpc_python)
            rows += mpc
            mpc_versions = {"crypten": raw["crypten"], "torch": raw["torch"]}
    if "TEE" in wanted:
        rows += tee_rows()
    for t in ("plaintext", "FHE", "DP", "FL", "MPC", "TEE"):
        if t not in wanted:
            skipped.setdefault(t, "not requested (--techniques)")
    result = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "smoke": smoke,
        "libraries": {"diffprivlib": _version("diffprivlib"), "flwr": _version("flwr"),
                      "crypten": mpc_versions["crypten"], "torch": mpc_versions["torch"],
                      "scikit-learn": sklearn.__version__,
                      "fhe-ml": version.split()[-1]},
        "rows": rows,
        "skipped": skipped,
        "timings_s": timings,
        "notes": notes,
    }
    path = write(out_dir, result)
    summary(rows)
    print(f"wrote {path} and techniques.csv ({len(rows)} rows)")
    if wanted >= {"plaintext", "FHE", "DP", "FL", "MPC", "TEE"}:
        import check_techniques
        problems = check_techniques.check(result)
        for p in problems:
            print(f"check_techniques: {p}", file=sys.stderr)
        if problems:
            sys.exit(1)
        print("check_techniques: ok")


if __name__ == "__main__":
    main()
