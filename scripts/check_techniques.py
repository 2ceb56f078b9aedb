#!/usr/bin/env python3
"""Checks the shape of a techniques results file (scripts/techniques: techniques.json).

    scripts/check_techniques.py FILE

Every row has every key of the schema (and no other) with values of the right types; the
techniques plaintext, FHE, DP, FL, MPC and TEE are all present, except those the file lists
under "skipped" (plaintext, FHE, DP and FL may not be skipped); plaintext, FHE and MPC rows cover
the three workloads; accuracies lie in [0, 1]; DP rows cover every ε for both logistic
workloads (the smoke set in a smoke file); FL rows cover every round for both partitions of
both logistic workloads, with cumulative bytes that never decrease; TEE rows are not measured
and cite a source with a URL, and every other row is measured. Standard library only.
Exit 0 when the file passes, 1 with a message per problem otherwise.
"""
import json
import math
import sys

ROW_KEYS = ["technique", "library", "workload", "setting", "epsilon", "round", "partition",
            "clients", "accuracy", "accuracy_std", "seeds", "latency_ms_per_sample",
            "bytes_per_sample", "comm_rounds_per_sample", "bytes_total", "measured", "source"]
TOP_KEYS = ["generated", "machine", "smoke", "libraries", "rows"]
LIBRARIES = ["diffprivlib", "flwr", "crypten", "torch", "scikit-learn", "fhe-ml"]
TECHNIQUES = ["plaintext", "FHE", "DP", "MPC", "FL", "TEE"]
REQUIRED = ["plaintext", "FHE", "DP", "FL"]  # never skipped
WORKLOADS = ["breast_cancer-logistic", "digits-logistic", "digits-mlp"]
LOGISTIC = ["breast_cancer-logistic", "digits-logistic"]
EPSILONS = {False: [0.1, 0.5, 1.0, 2.0, 5.0, 10.0], True: [1.0, 10.0]}
FL_ROUNDS = {False: 20, True: 2}
PARTITIONS = ["iid", "non-iid"]
NUMBERS = ["epsilon", "accuracy", "accuracy_std", "latency_ms_per_sample", "bytes_per_sample",
           "comm_rounds_per_sample", "bytes_total"]
INTEGERS = ["round", "clients", "seeds"]


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check(doc):
    problems = []
    if not isinstance(doc, dict):
        return ["the file is not a JSON object"]
    problems += [f"top level: missing key {k!r}" for k in TOP_KEYS if k not in doc]
    if not isinstance(doc.get("smoke"), bool):
        problems.append("top level: 'smoke' is not true or false")
    libs = doc.get("libraries")
    if not isinstance(libs, dict):
        problems.append("top level: 'libraries' is not an object")
    else:
        problems += [f"libraries: missing {k!r}" for k in LIBRARIES if k not in libs]
    skipped = doc.get("skipped") or {}
    if not isinstance(skipped, dict):
        problems.append("top level: 'skipped' is not an object of technique: reason")
        skipped = {}
    problems += [f"skipped: {t} may not be skipped" for t in REQUIRED if t in skipped]
    rows = doc.get("rows")
    if not isinstance(rows, list) or not rows:
        return problems + ["top level: 'rows' is not a non-empty list"]
    smoke = doc.get("smoke") is True

    for i, r in enumerate(rows):
        where = f"row {i}"
        if not isinstance(r, dict):
            problems.append(f"{where}: not an object")
            continue
        where = f"row {i} ({r.get('technique')}, {r.get('workload')}, {r.get('setting')!r:.60})"
        problems += [f"{where}: missing key {k!r}" for k in ROW_KEYS if k not in r]
        problems += [f"{where}: unknown key {k!r}" for k in r if k not in ROW_KEYS]
        t = r.get("technique")
        if t not in TECHNIQUES:
            problems.append(f"{where}: technique {t!r} is not one of {TECHNIQUES}")
        for k in ("library", "setting"):
            if not isinstance(r.get(k), str) or not r.get(k):
                problems.append(f"{where}: {k} is not a non-empty string")
        for k in NUMBERS:
            if r.get(k) is not None and not is_number(r.get(k)):
                problems.append(f"{where}: {k} = {r.get(k)!r} is neither a number nor null")
        for k in INTEGERS:
            v = r.get(k)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                problems.append(f"{where}: {k} = {v!r} is neither a non-negative integer nor null")
        acc = r.get("accuracy")
        if is_number(acc) and not 0 <= acc <= 1:
            problems.append(f"{where}: accuracy {acc} is outside [0, 1]")
        std = r.get("accuracy_std")
        if is_number(std) and not 0 <= std <= 1:
            problems.append(f"{where}: accuracy_std {std} is outside [0, 1]")
        for k in ("latency_ms_per_sample", "bytes_per_sample", "comm_rounds_per_sample",
                  "bytes_total"):
            if is_number(r.get(k)) and r[k] < 0:
                problems.append(f"{where}: {k} is negative")
        if not isinstance(r.get("measured"), bool):
            problems.append(f"{where}: measured is not true or false")
        if r.get("partition") not in (None, "iid", "non-iid"):
            problems.append(f"{where}: partition {r.get('partition')!r} is not iid, non-iid or null")
        if t == "TEE":
            if r.get("measured") is not False:
                problems.append(f"{where}: a TEE row must have measured = false")
            src = r.get("source")
            if not isinstance(src, str) or "http" not in src:
                problems.append(f"{where}: a TEE row needs a source with a citation and URL")
        elif t in TECHNIQUES:
            if r.get("measured") is not True:
                problems.append(f"{where}: a {t} row must be measured")
            if r.get("workload") not in WORKLOADS:
                problems.append(f"{where}: workload {r.get('workload')!r} is not one of {WORKLOADS}")
            if not is_number(acc):
                problems.append(f"{where}: a measured row needs an accuracy")

    by = {}
    for r in rows:
        if isinstance(r, dict):
            by.setdefault(r.get("technique"), []).append(r)
    for t in TECHNIQUES:
        if t not in by and t not in skipped:
            problems.append(f"technique {t}: no rows, and the file does not list it as skipped")
        if t in by and t in skipped:
            problems.append(f"technique {t}: listed as skipped but has rows")
    for t in ("plaintext", "FHE", "MPC"):
        if t in by:
            have = {r.get("workload") for r in by[t]}
            problems += [f"{t}: no row for {w}" for w in WORKLOADS if w not in have]
    for r in by.get("FHE", []) + by.get("MPC", []):
        for k in ("latency_ms_per_sample", "bytes_per_sample"):
            if not is_number(r.get(k)) or r[k] <= 0:
                problems.append(f"{r['technique']} {r.get('workload')}: {k} is not a positive number")

    for w in LOGISTIC:
        dp = [r for r in by.get("DP", []) if r.get("workload") == w]
        have = {r.get("epsilon") for r in dp}
        problems += [f"DP {w}: no row for ε = {e:g}" for e in EPSILONS[smoke] if e not in have]
        for r in dp:
            if not is_number(r.get("accuracy_std")) or not isinstance(r.get("seeds"), int):
                problems.append(f"DP {w} ε = {r.get('epsilon')}: needs accuracy_std and seeds")
        for p in PARTITIONS:
            fl = sorted((r for r in by.get("FL", []) if r.get("workload") == w
                         and r.get("partition") == p), key=lambda r: r.get("round") or 0)
            rounds = [r.get("round") for r in fl]
            want = list(range(1, FL_ROUNDS[smoke] + 1))
            if rounds != want:
                problems.append(f"FL {w} {p}: rounds {rounds}, expected 1..{FL_ROUNDS[smoke]} once each")
            totals = [r.get("bytes_total") for r in fl]
            if not all(is_number(b) and b > 0 for b in totals):
                problems.append(f"FL {w} {p}: every round needs a positive bytes_total")
            elif any(b < a for a, b in zip(totals, totals[1:])):
                problems.append(f"FL {w} {p}: cumulative bytes_total decreases")
            if any(not isinstance(r.get("clients"), int) or r["clients"] < 2 for r in fl):
                problems.append(f"FL {w} {p}: clients must be an integer of at least 2")
    return problems


def main():
    if len(sys.argv) != 2:
        print("usage: scripts/check_techniques.py FILE", file=sys.stderr)
        return 2
    path = sys.argv[1]
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{path}: cannot read it as JSON: {e}")
        return 1
    problems = check(doc)
    if problems:
        for p in problems:
            print(f"{path}: {p}")
        print(f"{path}: FAILED, {len(problems)} problem(s)")
        return 1
    rows = doc["rows"]
    counts = {t: sum(r["technique"] == t for r in rows) for t in TECHNIQUES}
    skipped = doc.get("skipped") or {}
    print(f"{path}: ok ({len(rows)} rows: " +
          ", ".join(f"{t} {n}" for t, n in counts.items() if n) +
          "".join(f"; {t} skipped: {why}" for t, why in skipped.items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
