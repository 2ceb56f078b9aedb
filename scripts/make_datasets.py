#!/usr/bin/env python3
"""Writes data/auto_mpg.csv and data/bikeshare.csv from the copies bundled in the ISLP package.

ISLP (the Python companion of "An Introduction to Statistical Learning", BSD-2-Clause) ships
both UCI datasets as CSV inside its wheel; this script fetches that pinned wheel with pip (no
install, no dependencies), reads the two files and writes them in fhe-ml's layout: features,
then a `target` column; text columns are categories (one-hot encoded by fhe-ml's loader).

    python3 scripts/make_datasets.py           # (re)write the files
    python3 scripts/make_datasets.py --check   # exit 1 if the committed files differ

Standard library only; needs pip and the network once (the package registry).
"""
import argparse
import csv
import io
import os
import subprocess
import sys
import tempfile
import zipfile

ISLP = "islp==0.6.0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGIN = {"1": "usa", "2": "europe", "3": "japan"}


def wheel_files(names):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                        "-d", tmp, ISLP], check=True)
        (whl,) = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        with zipfile.ZipFile(os.path.join(tmp, whl)) as z:
            return {n: z.read(f"ISLP/data/{n}").decode() for n in names}


def auto(text):
    """UCI Auto MPG (392 cars without missing horsepower): mpg from the car's specification."""
    rows = list(csv.DictReader(io.StringIO(text)))
    header = ["cylinders", "displacement", "horsepower", "weight", "acceleration", "year",
              "origin", "target"]
    out = [header]
    for r in rows:
        out.append([r["cylinders"], r["displacement"], r["horsepower"], r["weight"],
                    r["acceleration"], r["year"], ORIGIN[r["origin"]], r["mpg"]])
    return out


def bikeshare(text):
    """UCI Bike Sharing, hourly (2011): riders per hour. `casual` and `registered` are left
    out (they add up to the target); hour and month are categories, as ISLP's Poisson model."""
    rows = list(csv.DictReader(io.StringIO(text)))
    header = ["season", "month", "hour", "holiday", "weekday", "workingday", "weather", "temp",
              "atemp", "humidity", "windspeed", "target"]
    out = [header]
    for r in rows:
        out.append([r["season"], r["mnth"].lower()[:3], "h%02d" % int(r["hr"]), r["holiday"],
                    r["weekday"], r["workingday"], r["weathersit"], r["temp"], r["atemp"],
                    r["hum"], r["windspeed"], r["bikers"]])
    return out


def render(rows):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files")
    args = ap.parse_args()
    src = wheel_files(["Auto.csv", "Bikeshare.csv"])
    wanted = {"auto_mpg.csv": render(auto(src["Auto.csv"])),
              "bikeshare.csv": render(bikeshare(src["Bikeshare.csv"]))}
    bad = 0
    for name, text in wanted.items():
        path = os.path.join(ROOT, "data", name)
        if args.check:
            same = os.path.exists(path) and open(path).read() == text
            print(f"{name}: {'same' if same else 'DIFFERS'}")
            bad += not same
        else:
            with open(path, "w") as f:
                f.write(text)
            print(f"wrote {path}: {text.count(chr(10)) - 1} rows")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
