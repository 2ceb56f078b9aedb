"""Fails (exit 1) if an executed notebook holds an error output, a compile error or panic
printed in a cell, or fewer charts than required. Prints a one-line summary per notebook."""
import json
import sys

MIN_CHARTS = 2


def check(path):
    nb = json.load(open(path))
    problems, charts = [], 0
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("execution_count") is None and "".join(cell.get("source", [])).strip():
            problems.append(f"cell {i} did not run")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: error output {out.get('ename')}: {out.get('evalue')}")
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            if out.get("name") == "stderr" and ("error[" in text or "panicked" in text or "Error:" in text):
                problems.append(f"cell {i}: {text.strip()[:300]}")
            data = out.get("data", {})
            html = "".join(data.get("text/html", []))
            if "image/svg+xml" in data or "data:image/svg+xml" in html:
                charts += 1
    if charts < MIN_CHARTS:
        problems.append(f"{charts} chart(s), expected at least {MIN_CHARTS}")
    return problems, charts


failed = False
for path in sys.argv[1:]:
    problems, charts = check(path)
    status = "ok" if not problems else "FAILED"
    print(f"{path}: {status}, {charts} charts")
    for p in problems:
        print(f"  - {p}")
    failed |= bool(problems)
sys.exit(1 if failed else 0)
