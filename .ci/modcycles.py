#!/usr/bin/env python3
"""The runtime crate's layering, checked from its sources (run from the repository root).

    .ci/modcycles.py [SRC_DIR]

Reads every `crate::...` and `super::...` path in the non-test code of each module of
`file_cache/src` (a file is a module; a folder's `mod.rs` is the folder's own) and fails
(exit 1), saying why, when:

- two modules import each other, directly or around a loop (a cycle among files);
- two top-level parts (a folder with everything in it, or a top-level file) do (a cycle
  among folders);
- a part imports a part of a higher layer than its own (see `LAYERS`, and ARCHITECTURE.md),
  or one `NEVER` lets it import;
- a module not in `UNSAFE` uses `unsafe`, or an `unsafe` block, impl or fn has no
  `SAFETY` comment (or `# Safety` section) in the lines just above it;
- a module has more than `MAX_CODE_LINES` lines of non-test code (tests that outgrow a
  module go to a sibling file);
- a module does not start with a `//!` paragraph;
- a module other than the write gate (`WRITE_GATE`, `disk/gate.rs`) calls a `std::fs` or
  `rustix` function that creates, writes, renames, removes or touches a file or a
  directory, or builds `OpenOptions` that write (see `WRITES`): every change under a root
  goes through the gate, which knows the root's access mode (`FILE_CACHE_READONLY`, a
  read-only mount).

Doc-only modules (`guide/`) hold no code and are skipped. A new top-level module must be
given a layer here: the check fails on a part it does not know.
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "file_cache/src"
MAX_CODE_LINES = 1000
DOC_ONLY = {("guide",)}

# Each part uses only parts of lower layers (or, without a cycle, of its own).
LAYERS = {
    # leaves: settings, plain data, the formats
    "config": 0, "pod": 0, "checksum": 0, "entry": 0, "verified": 0, "tracked": 0, "outputs": 0, "probing": 0, "inputs": 0,
    "dependencies": 0,
    # what a call is made of, each independent of the others
    "key": 1, "fingerprint": 1, "memory": 1, "flight": 1,
    "codec": 2,
    "disk": 3,
    "site": 4, "remote": 4,
    "stats": 5, "inspect": 5,
    "call": 6,
    "manage": 7,
    "lib": 8,
}
# Imports ruled out beyond the layers: the remote tier hands back bytes and knows nothing of
# calls, and the public management functions drive calls only through what a user could.
NEVER = {("remote", "call"), ("manage", "call")}
# The modules that may use `unsafe` (each also allows it for itself).
UNSAFE = {("pod",), ("checksum",), ("codec", "flat"), ("key", "hasher"), ("key", "sink"), ("key", "fast")}
# The one module that changes anything on disk (see ARCHITECTURE.md).
WRITE_GATE = ("disk", "gate")
# What changes the file system, in the non-test code of every other module.
_FS = r"\b(?:fs|rustix::fs|std::fs|tokio::fs)::"
WRITES = [
    (re.compile(_FS + r"(write|create_dir|create_dir_all|rename|remove_file|remove_dir|"
                r"remove_dir_all|copy|hard_link|soft_link|set_permissions|symlink|symlinkat|"
                r"DirBuilder|unlink\w*|rmdir|mkdir\w*|renameat\w*|utimensat|futimens|"
                r"linkat|ftruncate|fallocate|openat\w*|open)\b"), "a file-system change"),
    (re.compile(r"\bFile::(create|create_new)\b"), "a file created"),
    (re.compile(r"\.(write|append|create|create_new|truncate)\(\s*true\s*\)"),
     "`OpenOptions` that write"),
    (re.compile(r"\b(set_modified|set_times|set_permissions|write_all_at|write_at|"
                r"utimensat|futimens|DirBuilder)\b"), "a file-system change"),
    (re.compile(r"\buse\s+(?:std::|::std::|rustix::)?fs::[^;]*\b(write|create_dir\w*|rename|"
                r"remove_\w+|copy|hard_link|set_permissions|DirBuilder|utimensat)\b"),
     "a file-system change imported"),
]


def modules(src):
    found = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = tuple(rel[:-3].split(os.sep))
            if parts[-1] in ("mod", "lib"):
                parts = parts[:-1]
            if any(parts[: len(d)] == d for d in DOC_ONLY):
                continue
            found[parts] = os.path.join(dirpath, f)
    return found


def strip_strings(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    return re.sub(r"'(\\.|[^'\\])'", "''", line)


def code_of(path):
    """(line number, text) of the non-test code: `#[cfg(test)]` items and comments out."""
    out, skip_depth, depth, pending_test = [], None, 0, False
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if skip_depth is None and re.match(r"#\[cfg\((all\()?test\b", s):
            pending_test = True
            continue
        bare = strip_strings(line).split("//")[0]
        opens, closes = bare.count("{"), bare.count("}")
        if pending_test and skip_depth is None:
            if opens or bare.rstrip().endswith(";"):
                if opens:
                    skip_depth = depth
                pending_test = False
                depth += opens - closes
                continue
            pending_test = s.startswith("#[") or s == "" or s.startswith("//")
        depth += opens - closes
        if skip_depth is not None:
            if depth <= skip_depth:
                skip_depth = None
            continue
        if s.startswith("//") or not s:
            continue
        out.append((n, line))
    return lines, out


def main():
    mods = modules(SRC)
    problems = []

    def resolve(base, path):
        for k in range(len(path), 0, -1):
            cand = tuple(base) + tuple(path[:k])
            if cand in mods:
                return cand
        return None

    edges = {m: set() for m in mods}
    pat = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
    group = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^{}]*)\}")
    for m, f in mods.items():
        lines, code = code_of(f)
        if not lines or not lines[0].startswith("//!"):
            problems.append(f"{f}: does not start with a `//!` paragraph")
        if len(code) > MAX_CODE_LINES:
            problems.append(
                f"{f}: {len(code)} lines of non-test code (at most {MAX_CODE_LINES}: "
                "cut it by responsibility, tests to a sibling file)"
            )
        text = "\n".join(strip_strings(line).split("//")[0] for _, line in code)
        for g in group.finditer(text):
            for item in g.group(3).split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item not in ("self", "*"):
                    text += f"\n{g.group(1)}{g.group(2)}::{item}"
        is_dir_mod = os.path.basename(f) == "mod.rs"
        for mt in pat.finditer(text):
            kind, rest = mt.group(1), mt.group(2).strip(":").split("::")
            if kind == "crate":
                base = ()
            else:
                base = m if is_dir_mod else m[:-1]
                while rest and rest[0] == "super":
                    base, rest = base[:-1], rest[1:]
            target = resolve(base, rest)
            if target is None or target == m or target[: len(m)] == m:
                continue  # itself, or one of its own submodules
            edges[m].add(target)
        # writes, outside the gate
        # (A sibling file of tests, `tests.rs`, is test code through and through.)
        if m != WRITE_GATE and m[-1:] != ("tests",):
            for n, line in code:
                bare = strip_strings(line).split("//")[0]
                for pattern, what in WRITES:
                    hit = pattern.search(bare)
                    if hit:
                        problems.append(
                            f"{f}:{n}: {what} (`{hit.group(0)}`) outside the write gate "
                            f"({'/'.join(WRITE_GATE)}.rs): go through its API, which knows "
                            "the root's access mode"
                        )
                        break
        # unsafe
        for n, line in code:
            bare = strip_strings(line).split("//")[0]
            if re.search(r"\bunsafe\s*(\{|impl\b|fn\b)", bare):
                if m not in UNSAFE:
                    problems.append(f"{f}:{n}: `unsafe` outside the modules allowed it (see UNSAFE)")
                    continue
                above = "\n".join(lines[max(0, n - 9): n - 1])
                if "SAFETY" not in above and "# Safety" not in above:
                    problems.append(f"{f}:{n}: `unsafe` without a `SAFETY` comment just above")

    name = lambda m: "::".join(m) or "lib"
    for comp in strongly_connected(edges):
        problems.append("module cycle: " + " <-> ".join(sorted(name(m) for m in comp)))

    part = lambda m: m[0] if m else "lib"
    part_edges = {}
    for m, targets in edges.items():
        for t in targets:
            if part(t) != part(m):
                part_edges.setdefault(part(m), set()).add(part(t))
                part_edges.setdefault(part(t), set())
    for comp in strongly_connected(part_edges):
        problems.append("folder cycle: " + " <-> ".join(sorted(comp)))
    for p in sorted({part(m) for m in mods}):
        if p not in LAYERS:
            problems.append(f"{p}: not in LAYERS (give it a layer in .ci/modcycles.py)")
    for m, targets in sorted(edges.items()):
        for t in sorted(targets):
            a, b = part(m), part(t)
            if (a, b) in NEVER:
                problems.append(f"{name(m)} imports {name(t)}: {a} must import nothing of {b}")
            elif a in LAYERS and b in LAYERS and LAYERS[b] > LAYERS[a]:
                problems.append(
                    f"{name(m)} (layer {LAYERS[a]}) imports {name(t)} (layer {LAYERS[b]}): "
                    "layers only look down"
                )

    for p in problems:
        print(p)
    print(f"{len(mods)} modules, {sum(map(len, edges.values()))} imports between them: "
          + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def strongly_connected(edges):
    """Tarjan's algorithm, iterative: the components of more than one node."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in list(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            advanced = False
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


if __name__ == "__main__":
    sys.exit(main())
