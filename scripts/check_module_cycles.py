"""Checks that the crate's module graph has no cycle (issue 14). An edge A -> B means a file of
module A names an item of module B (`use crate::b::...` or an inline `crate::b::...` path);
names re-exported by a facade (`pub use` in lib.rs or a mod.rs) are followed to the module
that defines them, and the facades' own `pub use` / `mod` lines are not dependencies. Prints
the graph's cycles and exits 1 if there is one. Run from the repository root."""
import glob, os, re, sys

def module_of(path):
    rel = os.path.relpath(path, "src")[:-3]
    if rel in ("lib", "main"):
        return "crate"
    if rel.endswith("/mod"):
        rel = rel[: -len("/mod")]
    return "crate::" + rel.replace("/", "::")

files = [p for p in glob.glob("src/**/*.rs", recursive=True) if not p.endswith("main.rs")]
modules = {module_of(p): p for p in files}

# Facade re-exports: `pub use child::{A, B};` in a module maps module::A to module::child.
alias = {}
for mod, path in modules.items():
    text = open(path).read()
    for m in re.finditer(r"pub use (self::|crate::)?([\w:]+)::\{?([\w,\s]+)\}?;", text):
        root, target, names = m.group(1), m.group(2), m.group(3)
        if root == "crate::":
            target_mod = "crate::" + target
        else:
            target_mod = f"{mod}::{target}" if mod != "crate" else f"crate::{target}"
        for name in re.split(r"[,\s]+", names.strip()):
            if name:
                alias[f"{mod}::{name}"] = target_mod

def resolve(path):
    """The defining module of a `crate::...` path."""
    parts = path.split("::")
    for k in range(len(parts), 0, -1):
        prefix = "::".join(parts[:k])
        if prefix in alias:
            return resolve(alias[prefix])
        if prefix in modules:
            return prefix
    return None

edges = {m: set() for m in modules}
for mod, path in modules.items():
    for line in open(path).read().split("\n"):
        s = line.strip()
        if s.startswith("pub use") or s.startswith("pub mod") or s.startswith("mod ") or s.startswith("//"):
            continue
        for m in re.finditer(r"crate::((?:\w+::)*\w+)(::\{([^}]*)\})?", s):
            base = "crate::" + m.group(1).rstrip(":")
            targets = [base]
            if m.group(3):
                targets = [base + "::" + n.strip().split(" ")[0] for n in m.group(3).split(",") if n.strip()]
            for t in targets:
                r = resolve(t)
                if r and r != mod and r != "crate":
                    edges[mod].add(r)

# Cycles: strongly connected components with more than one module.
index, low, stack, on, sccs = {}, {}, [], set(), []
def strong(v, counter=[0]):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1:
            sccs.append(sorted(comp))
for v in list(edges):
    if v not in index:
        strong(v)
print(f"{len(modules)} modules, {sum(len(e) for e in edges.values())} dependencies")
for c in sccs:
    inner = [f"{a} -> {b}" for a in c for b in sorted(edges[a]) if b in c]
    print("cycle:", ", ".join(inner))
sys.exit(1 if sccs else 0)
