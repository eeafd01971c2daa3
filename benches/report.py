#!/usr/bin/env python3
"""Turns criterion's results (target/criterion) into benches/results.md and
benches/results.png: each case's median, and its ratio to the floor and to the fastest peer.

    cargo bench                      # all four bench targets, under 10 minutes on 2 cores
    python3 -m venv venv && venv/bin/pip install matplotlib
    venv/bin/python benches/report.py

The Markdown table needs only the standard library; the chart needs matplotlib.
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
OUT_MD = ROOT / "benches" / "results.md"
OUT_PNG = ROOT / "benches" / "results.png"

PEERS = ("cached", "smart_cache")
FLOOR = "floor"


def load():
    """{(group, case): {contender: median seconds}} plus throughput bytes per case."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    bytes_per: dict[tuple[str, str], int] = {}
    for bench in CRITERION.glob("**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        group = meta["group_id"]
        func = meta["function_id"] or ""
        value = meta.get("value_str") or ""
        # Groups name cases by value ("f64_1M") or put the case in the function id.
        if group == "key" or group == "scale" or group == "threads":
            contender, case = func, value
        elif value:
            contender, case = func, value
        else:
            contender, case = func, ""
        seconds = est["median"]["point_estimate"] / 1e9
        rows.setdefault((group, case), {})[contender] = seconds
        tp = meta.get("throughput") or {}
        if "Bytes" in tp:
            bytes_per[(group, case)] = tp["Bytes"]
    return rows, bytes_per


def interleaved(name: str) -> tuple[int, dict[str, float]] | None:
    """Rounds and medians of contenders run in shuffled rounds (`support::interleaved`)."""
    path = CRITERION / f"{name}_interleaved.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return data["rounds"], data["median_seconds"]


def interleaved_tables() -> str:
    out = []
    for name, title, base in (("fresh_process", "Fresh process", FLOOR),
                              ("key_hashmap", "Key of HashMap<String,u64> 100k",
                               "file_cache_vec_of_pairs")):
        found = interleaved(name)
        if not found:
            continue
        rounds, medians = found
        out += ["", f"{title}, interleaved: every contender once per round, in a shuffled "
                f"order, {rounds} rounds; medians.", "",
                f"| contender | median | vs {base} |", "|---|---|---|"]
        for who, s in sorted(medians.items()):
            out.append(f"| {who} | {fmt_time(s)} | {ratio(s, medians[base])} |")
    return "\n".join(out) + "\n" if out else ""


def fmt_time(s: float) -> str:
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.2f} µs"
    return f"{s * 1e9:.0f} ns"


def ratio(a: float, b: float | None) -> str:
    return "" if b is None or b == 0 else f"{a / b:.2f}×"


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def table(rows, bytes_per) -> str:
    out = [
        f"Measured on: {machine()}. Medians of one `cargo bench` run; ratios are "
        "time ÷ time (below 1 is faster). \"vs floor\" compares with the floor of that "
        "case, \"vs best peer\" with the faster of `cached` and `smart-cache`.",
        "",
        "| case | contender | median | GB/s | vs floor | vs best peer |",
        "|---|---|---|---|---|---|",
    ]
    for (group, case) in sorted(rows):
        results = rows[(group, case)]
        floor = results.get(FLOOR, results.get("blake3_raw"))
        peers = [results[p] for p in PEERS if p in results]
        best_peer = min(peers) if peers else None
        name = f"{group}/{case}" if case else group
        order = sorted(results, key=lambda c: (c in (FLOOR, "blake3_raw"), c in PEERS, c))
        for contender in order:
            s = results[contender]
            gbps = ""
            if (group, case) in bytes_per:
                gbps = f"{bytes_per[(group, case)] / s / 1e9:.2f}"
            is_ours = contender.startswith("file_cache")
            out.append(
                f"| {name} | {contender} | {fmt_time(s)} | {gbps} | "
                f"{ratio(s, floor) if is_ours and floor else ''} | "
                f"{ratio(s, best_peer) if is_ours else ''} |"
            )
    return "\n".join(out) + "\n" + interleaved_tables() + targets(rows, bytes_per)


def targets(rows, bytes_per) -> str:
    """The issue's targets, each as the measured ratio."""
    def get(group, case, who):
        return rows.get((group, case), {}).get(who)

    lines = ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]

    def add(text, value, ok):
        met = "measured (no target)" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {text} | {value} | {met} |")

    fc, nm = get("small_hit", "", "file_cache"), get("small_hit", "", "file_cache_no_memory")
    floor = get("small_hit", "", FLOOR)
    best = min(v for v in (get("small_hit", "", p) for p in PEERS) if v)
    add("small hit faster than the fastest peer", f"{fc / best:.2f}× the fastest peer", fc < best)
    add("small hit, memory tier off, within 1.5× of the floor", f"{nm / floor:.2f}×", nm <= 1.5 * floor)
    # The interleaved medians (benches/fresh.rs) when present: the contenders ran in the
    # same rounds, so drift in process-creation speed cancels out.
    inter = interleaved("fresh_process")
    how = "interleaved runs" if inter else "criterion"
    fp = inter[1] if inter else {
        c: get("fresh_process", "", c) for c in ("file_cache", FLOOR, "empty", *PEERS)}
    add(f"fresh process within 1.2× of one file read ({how})",
        f"{fp['file_cache'] / fp[FLOOR]:.2f}×", fp["file_cache"] <= 1.2 * fp[FLOOR])
    base = min(fp["empty"], fp[FLOOR])
    ours = max(fp["file_cache"] - base, 1e-5)
    worst = min(fp[p] - base for p in PEERS)
    add("fresh process: ≥10× less added time than each peer (added = time − min(empty, floor), "
        f"ours floored at 10 µs; {how})", f"{worst / ours:.1f}× less", worst >= 10 * ours)
    m = get("miss_store", "", "file_cache_no_memory")
    add("miss + store within 1.5× of the floor", f"{m / get('miss_store', '', FLOOR):.2f}×",
        m <= 1.5 * get("miss_store", "", FLOOR))
    for case in ("f64_1M", "bytes_16MiB"):
        ours = get("large_hit", case, "file_cache_no_memory")
        fl = get("large_hit", case, FLOOR)
        best = min(get("large_hit", case, p) for p in PEERS)
        add(f"large hit {case}: ≥80% of the floor's throughput", f"{fl / ours:.0%}", fl / ours >= 0.8)
        add(f"large hit {case}: within 1.5× of the fastest peer", f"{ours / best:.2f}×", ours <= 1.5 * best)
        each = get("large_hit", case, "file_cache_verify_each")
        if each:
            add(f"large hit {case}, payload hashed on every hit (first hits of an entry in a "
                "process): share of the floor's throughput", f"{fl / each:.0%}", None)
    for case, limit in (("vec_f64_1M", 2.0), ("serde_bytes_16MiB", 2.0), ("vec_u8_16MiB", 3.0),
                        ("vec_string_100k", 3.0)):
        r = get("key", case, "file_cache") / get("key", case, "blake3_raw")
        add(f"key {case}: within {limit:.0f}× of raw blake3", f"{r:.2f}×", r <= limit)
    # The interleaved medians when present (benches/key.rs), as for the fresh process.
    inter = interleaved("key_hashmap")
    how = "interleaved runs" if inter else "criterion"
    km = inter[1] if inter else {
        c: get("key", "hashmap_string_u64_100k", c)
        for c in ("file_cache", "file_cache_vec_of_pairs", "file_cache_vec_in_map_order")}
    r = km["file_cache"] / km["file_cache_vec_of_pairs"]
    add(f"key HashMap<String,u64> 100k: within 3× of a Vec of the same pairs ({how})",
        f"{r:.2f}×", r <= 3)
    if km.get("file_cache_vec_in_map_order"):
        r = km["file_cache"] / km["file_cache_vec_in_map_order"]
        add("key HashMap<String,u64> 100k ÷ a Vec of its own entries in its iteration order "
            f"(same memory reads: what sorting costs; {how})", f"{r:.2f}×", None)
    thousand = get("scale", "1000", "file_cache_no_memory")
    r = get("scale", "1000000", "file_cache_no_memory") / thousand
    add("hit at 1M entries within 1.2× of 1k (random entries of each)", f"{r:.2f}×", r <= 1.2)
    same = get("scale", "1000000", "file_cache_no_memory_1000_keys")
    if same:
        add("hit at 1M entries ÷ 1k, the same number of distinct entries hit (1,000 of the "
            "million): what the cache's size alone costs", f"{same / thousand:.2f}×", None)
    for who in ("file_cache", "file_cache_no_memory"):
        one, two = get("threads", "1", who), get("threads", "2", who)
        # iter_custom: each of n threads does `iters` hits; time per iteration.
        add(f"threads, {who}: throughput 2 threads ÷ 1 thread", f"{2 * one / two:.2f}×", None)
    return "\n".join(lines) + "\n"


def chart(rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [k for k in sorted(rows) if FLOOR in rows[k] or any(p in rows[k] for p in PEERS)]
    contenders = ["file_cache", "file_cache_no_memory", "file_cache_verify_each", FLOOR, *PEERS]
    colors = {"file_cache": "#1b7837", "file_cache_no_memory": "#7fbf7b",
              "file_cache_verify_each": "#d9f0d3", FLOOR: "#999999",
              "cached": "#2166ac", "smart_cache": "#b2182b"}
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(cases) * len(contenders) / 3 + 2))
    y = 0
    ticks, labels = [], []
    for key in cases:
        results = rows[key]
        floor = results.get(FLOOR)
        base = floor if floor else min(results.values())
        present = [c for c in contenders if c in results]
        for i, c in enumerate(present):
            ax.barh(y + i * 0.8, results[c] / base, height=0.8, color=colors[c],
                    label=c if c not in ax.get_legend_handles_labels()[1] else None)
        ticks.append(y + (len(present) - 1) * 0.4)
        labels.append(f"{key[0]}/{key[1]}" if key[1] else key[0])
        y += len(present) * 0.8 + 1.2
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(ticks, labels)
    ax.invert_yaxis()
    ax.set_xlabel("time relative to the floor (log scale; left of the line is faster)")
    ax.set_title(f"file_cache vs floor and peers — {machine()}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT_PNG, dpi=110)


def main() -> int:
    if not CRITERION.exists():
        print("no target/criterion: run `cargo bench` first", file=sys.stderr)
        return 1
    rows, bytes_per = load()
    OUT_MD.write_text(table(rows, bytes_per))
    print(f"wrote {OUT_MD}")
    try:
        chart(rows)
        print(f"wrote {OUT_PNG}")
    except ImportError:
        print("matplotlib not installed: no chart", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
