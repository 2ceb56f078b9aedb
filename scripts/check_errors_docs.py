"""Lists public functions that return a Result but whose doc comment has no `# Errors` section
(issue 14: every such function documents its errors). Exit 1 if any. Run from the repository
root: python3 scripts/check_errors_docs.py"""
import glob, re, sys

missing = []
for path in sorted(glob.glob("src/**/*.rs", recursive=True)):
    lines = open(path).read().split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"\s*pub (async )?fn (\w+)", line)
        if not m:
            continue
        # The signature may span lines: read up to the opening brace.
        sig = ""
        for j in range(i, min(i + 15, len(lines))):
            sig += lines[j]
            if "{" in lines[j] or lines[j].rstrip().endswith(";"):
                break
        ret = sig.split("->", 1)[1] if "->" in sig else ""
        if not re.search(r"\bResult\b", ret.split("{")[0]):
            continue
        doc = []
        k = i - 1
        while k >= 0 and (lines[k].strip().startswith("///") or lines[k].strip().startswith("#[")):
            doc.append(lines[k])
            k -= 1
        if not any("# Errors" in d for d in doc):
            missing.append(f"{path}:{i + 1}: {m.group(2)}")
for m in missing:
    print(m)
print(f"{len(missing)} public functions returning Result without an `# Errors` section")
sys.exit(1 if missing else 0)
