#!/usr/bin/env python3
"""bench/report.py: turn build/bench/results.json into tables, target
checks, charts and the generated parts of docs/benchmarks.md.

docs/benchmarks.md mixes hand-written prose with generated blocks between
"<!-- BEGIN GENERATED name -->" and "<!-- END GENERATED name -->" lines;
only the blocks are rewritten, so every figure in the document comes from a
results file and the prose around it stays. Run by bench/run.py after each
run, or by hand:

    python3 bench/report.py --results build/bench/results.json --docs docs/benchmarks.md
"""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import time

BASE = "libc"  # every figure is also a ratio to glibc

# metric -> (label, kind, better): kind picks the format; better is "high",
# "low" or None (no direction).
METRICS = {
    "ops_per_s": ("ops/s", "rate", "high"),
    "peak_rss": ("peak RSS", "bytes", "low"),
    "rss_per_requested": ("RSS / requested", "ratio", "low"),
    "overhead_bytes_per_object": ("overhead bytes/object", "num1", "low"),
    "used_per_requested": ("used_memory / requested", "ratio", "low"),
    "ns_per_alloc": ("ns per allocation", "num1", "low"),
    "during_rss_per_live": ("RSS / live, during (mean)", "ratio", "low"),
    "peak_rss_per_peak_live": ("peak RSS / peak live", "ratio", "low"),
    "after_rss_per_live": ("RSS / live, after freeing 3/4", "ratio", "low"),
    "purged_rss_per_live": ("RSS / live, after purge", "ratio", "low"),
    "seconds": ("time", "secs", "low"),
    "frag_ratio": ("RSS / used (mem_fragmentation_ratio)", "ratio", "low"),
    "purged_frag_ratio": ("RSS / used after purge", "ratio", "low"),
    "half_frag_ratio": ("RSS / used after deleting half", "ratio", "low"),
    "allocator_frag_ratio": ("allocator active / allocated", "ratio", "low"),
    "appends_per_s": ("appends/s", "rate", "high"),
    "raw_ns_per_op": ("raw backend ns/op", "num1", "low"),
    "z_ns_per_op": ("zmalloc ns/op", "num1", "low"),
    "overhead_pct": ("zmalloc overhead", "pct", None),
    "redis_ns_per_op": ("Redis-style zmalloc ns/op", "num1", "low"),
    "vs_redis_pct": ("zmalloc vs Redis's scheme", "pct", None),
    "ns_per_pair": ("ns per zmalloc+zfree", "num1", "low"),
    "rollup_us": ("smaps_rollup, us", "num0", "low"),
    "full_scan_us": ("full smaps scan, us", "num0", "low"),
    "speedup": ("full scan / rollup", "ratio", "high"),
    "mappings": ("mappings", "num0", None),
    "many_rollup_us": ("smaps_rollup, 2000+ mappings, us", "num0", "low"),
    "many_full_scan_us": ("full scan, 2000+ mappings, us", "num0", "low"),
    "many_speedup": ("full scan / rollup, 2000+ mappings", "ratio", "high"),
}

HEADLINE = {
    "churn": ["ops_per_s", "peak_rss"],
    "meta": ["rss_per_requested", "overhead_bytes_per_object", "ns_per_alloc"],
    "large": ["during_rss_per_live", "peak_rss_per_peak_live", "after_rss_per_live", "purged_rss_per_live"],
    "prodcon": ["ops_per_s", "peak_rss"],
    "redis": ["seconds", "peak_rss", "frag_ratio", "purged_frag_ratio", "allocator_frag_ratio"],
    "realloc": ["appends_per_s", "peak_rss"],
    "account": ["raw_ns_per_op", "z_ns_per_op", "redis_ns_per_op", "overhead_pct", "vs_redis_pct"],
    "fastpath": ["ns_per_pair"],
    "smaps": ["rollup_us", "full_scan_us", "many_rollup_us", "many_full_scan_us"],
}

TITLES = {
    "churn": "1. small-object churn (thread scaling)",
    "meta": "2. metadata overhead: live objects of 8-64 bytes",
    "large": "3. large-allocation fragmentation (4 KiB-4 MiB)",
    "prodcon": "4. producer/consumer, every free remote",
    "redis": "5. Redis-like keys, values and dict entries",
    "realloc": "6. realloc growth (sds-style appends)",
    "account": "7. accounting overhead: zmalloc against the raw backend",
    "fastpath": "single-thread zmalloc+zfree fast path",
    "smaps": "zmalloc_get_private_dirty: smaps_rollup against the full smaps scan",
}


# ---------------------------------------------------------------- access

_INDEX = {}


def index(doc):
    key = (id(doc), len(doc["results"]))
    if key not in _INDEX:
        _INDEX[key] = {(r["workload"], r["threads"], r["backend"]): r["metrics"] for r in doc["results"]}
    return _INDEX[key]


def get(doc, w, t, b, m):
    v = index(doc).get((w, t, b), {}).get(m)
    return v["median"] if v else None


def threads_of(doc, w):
    return sorted({r["threads"] for r in doc["results"] if r["workload"] == w})


def workloads_of(doc):
    seen = [w for w in TITLES if any(r["workload"] == w for r in doc["results"])]
    return seen


def add_ratios(doc):
    for r in doc["results"]:
        for m, v in r["metrics"].items():
            base = get(doc, r["workload"], r["threads"], BASE, m)
            v["ratio_libc"] = v["median"] / base if base else None


# ---------------------------------------------------------------- format

def fmt(m, v):
    if v is None:
        return "-"
    kind = METRICS.get(m, ("", "num2", None))[1]
    if kind == "rate":
        return f"{v / 1e6:.2f}M" if v < 1e9 else f"{v / 1e9:.2f}G"
    if kind == "bytes":
        return f"{v / 1048576:.1f} MiB"
    if kind == "ratio":
        return f"{v:.3f}"
    if kind == "secs":
        return f"{v:.3f} s"
    if kind == "pct":
        return f"{v:+.1f}%"
    if kind == "num0":
        return f"{v:.0f}"
    if kind == "num1":
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell(doc, w, t, b, m):
    v = get(doc, w, t, b, m)
    if v is None:
        return "-"
    s = fmt(m, v)
    base = get(doc, w, t, BASE, m)
    if b != BASE and base and METRICS.get(m, ("", "", None))[2] is not None:
        s += f" ({v / base:.2f}x)"
    return s


def label(m):
    return METRICS.get(m, (m,))[0]


# ---------------------------------------------------------------- tables

def text_table(doc):
    bs = doc["meta"]["backends"]
    w0 = 36
    cw = max(18, max(len(b) for b in bs) + 2)
    lines = [f"zmalloc bench, {doc['meta']['date']}, {doc['meta']['cpu']}, {doc['meta']['cores']} cores"
             f" (median of {doc['meta']['reps']}; (Nx) = ratio to glibc, same run)"]
    lines.append(" " * w0 + "".join(b.rjust(cw) for b in bs))
    for w in workloads_of(doc):
        for t in threads_of(doc, w):
            head = f"{w}" + (f" t={t}" if w in ("churn", "prodcon", "account") else "")
            lines.append(head)
            for m in HEADLINE[w]:
                lines.append(("  " + label(m))[:w0].ljust(w0) + "".join(cell(doc, w, t, b, m).rjust(cw) for b in bs))
    cg = doc.get("callgrind_instructions_per_pair") or {}
    if cg:
        lines.append("fastpath (callgrind)")
        lines.append("  instructions per zmalloc+zfree".ljust(w0) +
                     "".join((f"{cg[b]:.0f}" if b in cg else "-").rjust(cw) for b in bs))
    for d in doc["meta"].get("debug_backends", []):
        plain = d[:-len("-debug")]
        a, b = get(doc, "churn", 1, plain, "ops_per_s"), get(doc, "churn", 1, d, "ops_per_s")
        if a and b:
            lines.append(f"verification mode: churn t=1 {plain} {fmt('ops_per_s', a)} ops/s, "
                         f"{d} {fmt('ops_per_s', b)} ops/s: {a / b:.2f}x slower")
    return "\n".join(lines)


def md_tables(doc):
    bs = doc["meta"]["backends"]
    out = []
    for w in workloads_of(doc):
        out.append(f"#### {TITLES[w]}\n")
        out.append("| | " + " | ".join(bs) + " |")
        out.append("|---|" + "---:|" * len(bs))
        for t in threads_of(doc, w):
            for m in HEADLINE[w]:
                name = label(m) + (f", {t} thread{'s' if t > 1 else ''}" if w in ("churn", "prodcon", "account") else "")
                out.append(f"| {name} | " + " | ".join(cell(doc, w, t, b, m) for b in bs) + " |")
        if w == "fastpath" and doc.get("callgrind_instructions_per_pair"):
            cg = doc["callgrind_instructions_per_pair"]
            out.append("| instructions per pair (callgrind) | " +
                       " | ".join(f"{cg[b]:.0f}" if b in cg else "-" for b in bs) + " |")
        out.append("")
    return "\n".join(out)


def md_allocator_info(doc):
    bs = [b for b in doc["meta"]["backends"] if index(doc).get(("redis", 1, b))]
    if not bs:
        return "_The redis workload was not run._"
    keys = [("alloc_allocated", "allocated"), ("alloc_active", "active"), ("alloc_resident", "resident"),
            ("alloc_retained", "retained"), ("alloc_muzzy", "muzzy"),
            ("alloc_frag_smallbins", "frag_smallbins"), ("used_memory", "zmalloc_used_memory"),
            ("rss", "RSS")]
    out = ["| backend | " + " | ".join(k[1] for k in keys) + " | active/allocated | resident/active |",
           "|---|" + "---:|" * (len(keys) + 2)]
    for b in bs:
        row = [f"{get(doc, 'redis', 1, b, k) / 1048576:.1f} MiB" if get(doc, 'redis', 1, b, k) is not None else "-"
               for k, _ in keys]
        fr, rr = get(doc, "redis", 1, b, "allocator_frag_ratio"), get(doc, "redis", 1, b, "allocator_rss_ratio")
        row += [f"{fr:.3f}" if fr else "-", f"{rr:.3f}" if rr else "-"]
        out.append(f"| {b} | " + " | ".join(row) + " |")
    return "\n".join(out)


def write_csv(doc, path):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "threads", "backend", "metric", "median", "min", "max", "runs", "ratio_libc"])
        for r in sorted(doc["results"], key=lambda r: (r["workload"], r["threads"], r["backend"])):
            for m, v in sorted(r["metrics"].items()):
                wr.writerow([r["workload"], r["threads"], r["backend"], m, v["median"], v["min"], v["max"],
                             len(v["runs"]), "" if v.get("ratio_libc") is None else round(v["ratio_libc"], 4)])


# ---------------------------------------------------------------- targets

def targets(doc):
    """Each target of the issues, checked from the numbers: a list of
    (issue, target, measured, verdict) with verdict PASS, FAIL or n/a."""
    bs = doc["meta"]["backends"]
    out = []

    def add(issue, what, measured, ok):
        out.append((issue, what, measured, "n/a" if ok is None else ("PASS" if ok else "FAIL")))

    for t in threads_of(doc, "account"):
        for b in bs:
            v = get(doc, "account", t, b, "overhead_pct")
            if v is not None:
                add("#2", f"accounting overhead <= 5%, {b}, {t} thread{'s' if t > 1 else ''}",
                    f"{v:+.1f}%", v <= 5.0)
            r = get(doc, "account", t, b, "vs_redis_pct")
            if r is not None:
                add("#2", f"faster than Redis's atomic-slot scheme, {b}, {t} thread{'s' if t > 1 else ''}",
                    f"{r:+.1f}%", r <= 0.0)
    pool = "pool" in bs
    why = "pool backend not in this run"
    # Issue 3.
    if "fastpath" in workloads_of(doc):
        p, mi = get(doc, "fastpath", 1, "pool", "ns_per_pair"), get(doc, "fastpath", 1, "mimalloc", "ns_per_pair")
        add("#3", "pool fast path no slower than mimalloc (ns per zmalloc+zfree)",
            f"pool {p:.1f} ns, mimalloc {mi:.1f} ns" if p and mi else why if not pool else "mimalloc not run",
            (p <= mi) if p and mi else None)
    for w in ("churn", "prodcon"):
        for t in threads_of(doc, w):
            if w == "churn" and t < 2:
                continue
            p, je = get(doc, w, t, "pool", "ops_per_s"), get(doc, w, t, "jemalloc", "ops_per_s")
            add("#3", f"pool {w} {t} threads >= jemalloc ops/s",
                f"{p / je:.2f}x jemalloc" if p and je else why, (p >= je) if p and je else None)
    # Never slower than glibc: every speed figure.
    speed = [("churn", "ops_per_s", 1), ("prodcon", "ops_per_s", 1), ("realloc", "appends_per_s", 1),
             ("redis", "seconds", -1), ("meta", "ns_per_alloc", -1), ("fastpath", "ns_per_pair", -1)]
    worst = None
    for w, m, sign in speed:
        for t in threads_of(doc, w):
            p, g = get(doc, w, t, "pool", m), get(doc, w, t, BASE, m)
            if p and g:
                rel = p / g if sign > 0 else g / p  # pool speed relative to glibc
                if worst is None or rel < worst[0]:
                    worst = (rel, f"{w} t={t}")
    add("#3", "pool never slower than glibc (slowest workload, speed relative to glibc)",
        f"{worst[0]:.2f}x on {worst[1]}" if worst else why, (worst[0] >= 1.0) if worst else None)
    for w in ("churn", "prodcon", "redis", "realloc", "meta", "large"):
        for t in threads_of(doc, w):
            p, je = get(doc, w, t, "pool", "peak_rss"), get(doc, w, t, "jemalloc", "peak_rss")
            if w in ("churn", "prodcon") and t not in (max(threads_of(doc, w)), min(threads_of(doc, w))):
                continue
            add("#3", f"pool peak RSS <= 1.05x jemalloc, {w}" + (f" t={t}" if w in ("churn", "prodcon") else ""),
                f"{p / je:.3f}x" if p and je else why, (p <= 1.05 * je) if p and je else None)
    p, je = get(doc, "redis", 1, "pool", "frag_ratio"), get(doc, "redis", 1, "jemalloc", "frag_ratio")
    add("#3", "pool Redis-like final RSS/used <= jemalloc's",
        f"pool {p:.3f}, jemalloc {je:.3f}" if p and je else why, (p <= je) if p and je else None)
    # Issue 5.
    debug = doc["meta"].get("debug_backends", [])
    if not debug:
        add("#5", "verification mode <= 3x slower on churn", "no verification build in this run", None)
    for d in debug:
        plain = d[:-len("-debug")]
        a, b = get(doc, "churn", 1, plain, "ops_per_s"), get(doc, "churn", 1, d, "ops_per_s")
        add("#5", f"verification mode <= 3x slower on churn ({plain})",
            f"{a / b:.2f}x" if a and b else "not measured", (a / b <= 3.0) if a and b else None)
    # Issue 2: smaps_rollup must be the faster way.
    sp = [get(doc, "smaps", 1, b, "many_speedup") for b in bs]
    sp = [s for s in sp if s]
    if sp:
        add("#2", "smaps_rollup faster than the full smaps scan (2000+ mappings, median over backends)",
            f"{sorted(sp)[len(sp) // 2]:.2f}x faster", sorted(sp)[len(sp) // 2] > 1.0)
    return out


def text_targets(doc):
    rows = targets(doc)
    lines = ["targets:"]
    for issue, what, measured, verdict in rows:
        lines.append(f"  {verdict:4} {issue} {what}: {measured}")
    return "\n".join(lines)


def md_targets(doc):
    rows = targets(doc)
    out = ["| issue | target | measured | result |", "|---|---|---|---|"]
    for issue, what, measured, verdict in rows:
        out.append(f"| {issue} | {what} | {measured} | **{verdict}** |")
    return "\n".join(out)


# ---------------------------------------------------------------- seed claims

def ratio_text(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def claim_blocks(doc):
    """Generated 'measured' and 'verdict' text per seed claim."""
    bs = doc["meta"]["backends"]
    cores = doc["meta"]["cores"]
    blocks = {}
    # C1: jemalloc gets faster with more cores and threads.
    ts = threads_of(doc, "churn")
    if ts:
        rows = ["| threads | " + " | ".join(bs) + " |", "|---:|" + "---:|" * len(bs)]
        for t in ts:
            rows.append(f"| {t} | " + " | ".join(cell(doc, "churn", t, b, "ops_per_s") for b in bs) + " |")
        j1 = get(doc, "churn", 1, "jemalloc", "ops_per_s")
        j2 = get(doc, "churn", min(cores, max(ts)), "jemalloc", "ops_per_s")
        g1 = get(doc, "churn", 1, BASE, "ops_per_s")
        g2 = get(doc, "churn", min(cores, max(ts)), BASE, "ops_per_s")
        txt = "\n".join(rows)
        if j1 and j2 and g1 and g2:
            sj, sg = j2 / j1, g2 / g1
            jm = [get(doc, "churn", t, "jemalloc", "ops_per_s") / get(doc, "churn", t, BASE, "ops_per_s")
                  for t in ts if t > 1 and get(doc, "churn", t, BASE, "ops_per_s")]
            txt += (f"\n\nFrom 1 to {min(cores, max(ts))} threads jemalloc's throughput changes by {sj:.2f}x "
                    f"(glibc {sg:.2f}x). With more than one thread jemalloc runs at "
                    f"{min(jm):.2f}x-{max(jm):.2f}x glibc's throughput.")
            holds = sj > 1.3 and min(jm) >= 1.0
            verdict = ("**Holds as far as 2 cores can show**" if holds else
                       "**Does not hold here**" if sj <= 1.0 and min(jm) < 1.0 else "**Partly holds here**")
            txt += (f"\n\n{verdict}: scaling from 1 to {cores} threads with jemalloc "
                    f"{'is' if sj > 1.3 else 'is not'} close to linear and jemalloc "
                    f"{'stays ahead of' if min(jm) >= 1.0 else 'does not stay ahead of'} glibc at every "
                    f"thread count above one. Beyond {cores} threads the threads share {cores} cores, so the "
                    "numbers at 4 and 8 threads measure behaviour under oversubscription, not scaling.")
        blocks["claim-threads"] = txt
    # C2: jemalloc metadata for small objects slightly more than tcmalloc.
    if "meta" in workloads_of(doc):
        rows = ["| | " + " | ".join(bs) + " |", "|---|" + "---:|" * len(bs)]
        for m in ("rss_per_requested", "overhead_bytes_per_object"):
            rows.append(f"| {label(m)} | " + " | ".join(cell(doc, "meta", 1, b, m) for b in bs) + " |")
        je, tc = get(doc, "meta", 1, "jemalloc", "rss_per_requested"), get(doc, "meta", 1, "tcmalloc", "rss_per_requested")
        txt = "\n".join(rows)
        if je and tc:
            txt += (f"\n\njemalloc uses {je / tc:.3f}x tcmalloc's RSS for the same "
                    f"{get(doc, 'meta', 1, 'jemalloc', 'objects') or 0:.0f} objects. "
                    + ("**Holds here**: jemalloc spends more memory per small object than tcmalloc."
                       if je > tc * 1.005 else
                       "**Does not hold here**: jemalloc spends no more memory per small object than tcmalloc"
                       + (" (within 0.5%)." if je > tc * 0.995 else ".")))
        blocks["claim-metadata"] = txt
    # C3: jemalloc fragments less than tcmalloc on large allocations.
    if "large" in workloads_of(doc):
        ms = ["during_rss_per_live", "peak_rss_per_peak_live", "after_rss_per_live", "purged_rss_per_live"]
        rows = ["| | " + " | ".join(bs) + " |", "|---|" + "---:|" * len(bs)]
        for m in ms:
            rows.append(f"| {label(m)} | " + " | ".join(cell(doc, "large", 1, b, m) for b in bs) + " |")
        txt = "\n".join(rows)
        cmp = [(m, get(doc, "large", 1, "jemalloc", m), get(doc, "large", 1, "tcmalloc", m)) for m in ms[:3]]
        if all(j and t for _, j, t in cmp):
            wins = [m for m, j, t in cmp if j < t * 0.99]
            loses = [m for m, j, t in cmp if j > t * 1.01]
            txt += ("\n\njemalloc/tcmalloc RSS per live byte: " +
                    ", ".join(f"{label(m)} {j / t:.2f}x" for m, j, t in cmp) + ". ")
            txt += ("**Holds here.**" if not loses and wins else
                    "**Does not hold here.**" if not wins else "**Partly holds here.**")
        blocks["claim-large"] = txt
    # C4: finer size classes mean less lock contention than ptmalloc.
    if "prodcon" in workloads_of(doc) or "churn" in workloads_of(doc):
        rows = ["| | " + " | ".join(bs) + " |", "|---|" + "---:|" * len(bs)]
        pairs = [("prodcon", t) for t in threads_of(doc, "prodcon")] + \
                [("churn", t) for t in threads_of(doc, "churn") if t > 1]
        for w, t in pairs:
            rows.append(f"| {w}, {t} threads, ops/s | " + " | ".join(cell(doc, w, t, b, "ops_per_s") for b in bs) + " |")
        txt = "\n".join(rows)
        rel = [(w, t, get(doc, w, t, "jemalloc", "ops_per_s"), get(doc, w, t, BASE, "ops_per_s")) for w, t in pairs]
        rel = [(w, t, j / g) for w, t, j, g in rel if j and g]
        if rel:
            ahead = [r for r in rel if r[2] > 1.0]
            txt += ("\n\njemalloc relative to glibc (ptmalloc): " +
                    ", ".join(f"{w} t={t} {r:.2f}x" for w, t, r in rel) + ". ")
            txt += ("**Holds here**: jemalloc is ahead of ptmalloc on every multi-threaded workload." if len(ahead) == len(rel)
                    else "**Does not hold here**: jemalloc is not ahead of ptmalloc on any multi-threaded workload."
                    if not ahead else "**Partly holds here**: jemalloc is ahead on some multi-threaded workloads, not all.")
        blocks["claim-contention"] = txt
    # C5: zmalloc's own pools (the pool backend).
    if "pool" in bs:
        rows = ["| | pool | glibc | jemalloc | pool / glibc |", "|---|---:|---:|---:|---:|"]
        score = {"speed": [0, 0, 0], "memory": [0, 0, 0]}  # better than glibc, than jemalloc, rows
        for kind, w, t, m in [("speed", "fastpath", 1, "ns_per_pair"), ("speed", "churn", 1, "ops_per_s"),
                              ("speed", "churn", 2, "ops_per_s"), ("speed", "prodcon", 2, "ops_per_s"),
                              ("speed", "redis", 1, "seconds"), ("memory", "meta", 1, "rss_per_requested"),
                              ("memory", "redis", 1, "frag_ratio"), ("memory", "redis", 1, "peak_rss"),
                              ("memory", "large", 1, "during_rss_per_live"),
                              ("memory", "large", 1, "after_rss_per_live")]:
            p, g, j = get(doc, w, t, "pool", m), get(doc, w, t, BASE, m), get(doc, w, t, "jemalloc", m)
            if p is None:
                continue
            hi = METRICS[m][2] == "high"
            sc = score[kind]
            sc[2] += 1
            sc[0] += bool(g) and (p > g if hi else p < g)
            sc[1] += bool(j) and (p > j if hi else p < j)
            rows.append(f"| {w} t={t}: {label(m)} | {fmt(m, p)} | {fmt(m, g)} | {fmt(m, j)} | {ratio_text(p, g)} |")
        sp, me = score["speed"], score["memory"]
        verdict = ("**Holds here**" if sp[0] == sp[2] and me[0] == me[2] else
                   "**Does not hold here**" if sp[0] + me[0] == 0 else "**Partly holds here**")
        rows.append(f"\nThe pool backend beats glibc on {sp[0]} of {sp[2]} speed rows and {me[0]} of {me[2]} "
                    f"memory rows, and beats jemalloc on {sp[1]} of {sp[2]} speed rows and {me[1]} of {me[2]} memory rows. "
                    f"{verdict} for our pool "
                    "(Redis's own zmalloc has no pools at all: on Redis the claim is simply false).")
        blocks["claim-pool"] = "\n".join(rows)
    else:
        blocks["claim-pool"] = ("_Not measured in this run: the pool backend was not built (src/pool is still "
                                "being written). `make bench` includes it automatically once it builds._")
    debug = doc["meta"].get("debug_backends", [])
    if debug:
        rows = []
        for d in debug:
            plain = d[:-len("-debug")]
            a, b = get(doc, "churn", 1, plain, "ops_per_s"), get(doc, "churn", 1, d, "ops_per_s")
            if a and b:
                rows.append(f"- churn, 1 thread, {plain}: plain {fmt('ops_per_s', a)} ops/s, verification mode "
                            f"{fmt('ops_per_s', b)} ops/s: **{a / b:.2f}x slower** (target <= 3x).")
        blocks["claim-debug"] = "\n".join(rows) or "_No verification-mode figures in this run._"
    else:
        blocks["claim-debug"] = "_Not measured in this run: no verification-mode build (src/debug.c)._"
    return blocks


# ---------------------------------------------------------------- charts

def charts(doc, out, plot_gp):
    if not shutil.which("gnuplot"):
        print("bench: charts skipped (gnuplot not installed; scripts/deps.sh installs gnuplot-nox)")
        return []
    bs = doc["meta"]["backends"]
    made = []
    ts = threads_of(doc, "churn")
    if ts:
        with open(os.path.join(out, "churn.dat"), "w") as f:
            f.write("threads " + " ".join(bs) + "\n")
            for t in ts:
                f.write(f"{t} " + " ".join(f"{(get(doc, 'churn', t, b, 'ops_per_s') or 0) / 1e6:.3f}" for b in bs) + "\n")
        made.append("churn.svg")
    # Speed relative to glibc (higher is better) and memory relative to
    # glibc (lower is better), one group per workload.
    speed = [("churn t=1", "churn", 1, "ops_per_s", 1), ("churn t=2", "churn", 2, "ops_per_s", 1),
             ("prodcon t=2", "prodcon", 2, "ops_per_s", 1), ("redis", "redis", 1, "seconds", -1),
             ("realloc", "realloc", 1, "appends_per_s", 1), ("fastpath", "fastpath", 1, "ns_per_pair", -1),
             ("meta", "meta", 1, "ns_per_alloc", -1)]
    mem = [("meta RSS", "meta", 1, "rss_per_requested"), ("large during", "large", 1, "during_rss_per_live"),
           ("large after", "large", 1, "after_rss_per_live"), ("redis peak", "redis", 1, "peak_rss"),
           ("redis RSS/used", "redis", 1, "frag_ratio"), ("churn t=2 peak", "churn", 2, "peak_rss"),
           ("realloc peak", "realloc", 1, "peak_rss")]
    for name, rows, inv in (("speed", speed, True), ("memory", [r + (1,) for r in mem], False)):
        lines = []
        for lab, w, t, m, sign in rows:
            base = get(doc, w, t, BASE, m)
            if not base:
                continue
            vals = []
            for b in bs:
                v = get(doc, w, t, b, m)
                vals.append(f"{(v / base if sign > 0 else base / v):.4f}" if v else "NaN")
            lines.append(f"\"{lab}\" " + " ".join(vals))
        if lines:
            with open(os.path.join(out, f"{name}.dat"), "w") as f:
                f.write("workload " + " ".join(f'"{b}"' for b in bs) + "\n" + "\n".join(lines) + "\n")
            made.append(f"{name}.svg")
    if not made:
        return []
    title = f"{doc['meta']['cpu']}, {doc['meta']['cores']} cores, {doc['meta']['date']}"
    p = subprocess.run(["gnuplot", "-e", f"dir='{out}'; nb={len(bs)}; subtitle='{title}'", plot_gp],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print("bench: gnuplot failed:", p.stderr.strip()[-400:])
        return []
    return [os.path.join(out, m) for m in made if os.path.exists(os.path.join(out, m))]


# ---------------------------------------------------------------- docs

def machine_block(doc):
    m = doc["meta"]
    la = f"load average {m.get('loadavg_start')} at the start, {m.get('loadavg_end')} at the end"
    lines = [f"- Date: {m['date']}",
             f"- CPU: {m['cpu']}, {m['cores']} cores; Linux {m['kernel']}",
             f"- Backends: " + ", ".join(f"`{b}` ({m['libs'].get(b, '?')})" for b in m["backends"]),
             f"- Run: `make bench{' QUICK=1' if m['quick'] else ''}`, median of {m['reps']} repetitions, "
             f"work scale {m['scale']}, {m['seconds']:.0f} s of benchmark runs; {la}.",
             "- Ratios in parentheses are to glibc (`libc` backend) measured in the same run; "
             "every figure comes from `build/bench/results.json` through `bench/report.py`."]
    if m.get("errors"):
        lines.append("- Failed runs: " + "; ".join(m["errors"]))
    return "\n".join(lines)


def included_block(out, name, script):
    """Another benchmark's markdown report, embedded with its date."""
    p = os.path.join(out, f"{name}.md")
    if not os.path.exists(p):
        return f"_No results yet ({script} has not run in a full `make bench`)._"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(p)))
    body = open(p).read().strip()
    body = re.sub(r"^(#+)", r"\1##", body, flags=re.M)  # nest its headings
    return f"_From `build/bench/{name}.md`, written by {script} at {when}._\n\n{body}"


def chart_block(doc, out, docs_path):
    ddir = os.path.join(os.path.dirname(docs_path), "benchmarks")
    imgs = []
    for name, alt in (("churn", "churn ops/s by threads"), ("speed", "speed relative to glibc"),
                      ("memory", "memory relative to glibc")):
        src = os.path.join(out, f"{name}.svg")
        if os.path.exists(src):
            os.makedirs(ddir, exist_ok=True)
            shutil.copy(src, os.path.join(ddir, f"{name}.svg"))
            imgs.append(f"![{alt}](benchmarks/{name}.svg)")
    return "\n\n".join(imgs) if imgs else "_No charts (gnuplot missing)._"


def replace_block(text, name, body):
    pat = re.compile(rf"(<!-- BEGIN GENERATED {re.escape(name)} -->\n).*?(<!-- END GENERATED {re.escape(name)} -->)", re.S)
    if not pat.search(text):
        return text + f"\n<!-- BEGIN GENERATED {name} -->\n{body}\n<!-- END GENERATED {name} -->\n"
    return pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def write_docs(doc, path, out, data=True):
    """Rewrite the generated blocks; with data=False only the embedded
    reports of the other benchmarks (for a results file from a QUICK run,
    which must not replace a full run's figures)."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    blocks = {"redis-server": included_block(out, "redis", "bench/redis/bench.sh"),
              "preload": included_block(out, "preload", "bench/preload/bench.sh")}
    if data:
        blocks.update({"machine": machine_block(doc), "targets": md_targets(doc), "tables": md_tables(doc),
                       "allocator-info": md_allocator_info(doc), "charts": chart_block(doc, out, path)})
        blocks.update(claim_blocks(doc))
    for name, body in blocks.items():
        text = replace_block(text, name, body)
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="build/bench/results.json")
    ap.add_argument("--docs", default="docs/benchmarks.md")
    ap.add_argument("--force", action="store_true", help="write a QUICK run's figures into the docs too")
    a = ap.parse_args()
    doc = json.load(open(a.results))
    add_ratios(doc)
    print(text_table(doc))
    print(text_targets(doc))
    data = a.force or not doc["meta"].get("quick")
    if not data:
        print(f"report: {a.results} is from a QUICK run: only the embedded reports of {a.docs} are updated "
              "(--force to write its figures)")
    write_docs(doc, a.docs, os.path.dirname(a.results), data=data)


if __name__ == "__main__":
    main()
