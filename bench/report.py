#!/usr/bin/env python3
"""bench/report.py: tables and documents from a results file of `make bench`.

Formatting only: the numbers come from bench/results.py, the target
verdicts from bench/verdicts.py (targets in bench/targets.json), the seed
claims' verdicts from bench/claims.py, the charts from bench/charts.py.

docs/benchmarks.md is the template: hand-written prose with generated blocks
between "<!-- BEGIN GENERATED name -->" and "<!-- END GENERATED name -->";
only the blocks are rewritten, so every figure comes from a results file.
`make bench` writes its report to build/bench/benchmarks.md; `make
bench-docs` regenerates docs/benchmarks.md and its charts from the results
committed in docs/benchmarks/:

    python3 bench/report.py --results docs/benchmarks/results.json \\
        --docs docs/benchmarks.md --out docs/benchmarks.md --charts docs/benchmarks
"""
import argparse
import json
import os
import re

import charts
import claims
import verdicts
from results import Results, geomean

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "metrics.json")) as _f:
    METRICS = json.load(_f)["metrics"]
PEERS = ["jemalloc", "tcmalloc", "mimalloc"]


# ---------------------------------------------------------------- values

def label(m):
    return METRICS.get(m, [m])[0]


def better(m):
    return METRICS.get(m, ["", "", None])[2]


def fmt(m, v):
    if v is None:
        return "-"
    kind = METRICS.get(m, ["", "num2", None])[1]
    if kind == "rate":
        return f"{v / 1e6:.2f}M" if v < 1e9 else f"{v / 1e9:.2f}G"
    if kind == "bytes":
        return f"{v / 1048576:.1f} MiB"
    if kind == "ratio":
        return f"{v:.3f}"
    if kind == "secs":
        return f"{v:.3f} s" if v >= 0.01 else f"{v * 1000:.2f} ms"
    if kind == "pct":
        return f"{v:+.1f}%"
    if kind == "num0":
        return f"{v:.0f}"
    if kind == "num1":
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def case_name(res, w, t):
    spec = res.workload(w) or {}
    return w + (f" t={t}" if len(spec.get("threads", [1])) > 1 or t > 1 else "")


def best_peer(res, w, t, m):
    vals = [res.get(w, t, p, m) for p in PEERS]
    vals = [v for v in vals if v]
    return min(vals) if vals else None


# ---------------------------------------------------------------- tables
# Each table is (header, rows) of strings; md() and text() lay them out.

def md(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def text(header, rows, first=26):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    widths[0] = max(widths[0], first)
    lines = ["  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header))]
    for r in rows:
        lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    return "\n".join(lines)


def summary_table(res, metric):
    """The one table of issue 10: every workload run both ways, every
    variant side by side, then the pool's ratios."""
    cols = [v for v in res.column_variants()]
    header = ["workload"] + cols + ["pool / best", "zm:pool / best", "pool / glibc", "zm:pool / glibc"]
    rows, rel = [], {"pool": [], "zm:pool": []}
    for w, t in res.cases("both-modes"):
        m = res.time_metric(w) if metric == "time" else metric
        if not any(res.get(w, t, v, m) for v in cols):
            continue
        b, g = best_peer(res, w, t, m), res.get(w, t, "glibc", m)
        p, zp = res.get(w, t, "pool", m), res.get(w, t, "zm:pool", m)
        for name, x in (("pool", p), ("zm:pool", zp)):
            if x and b:
                rel[name].append(x / b)
        rows.append([case_name(res, w, t) + ("" if m in ("seconds", "peak_rss", "cpu_seconds") else f" ({label(m)})")] +
                    [fmt(m, res.get(w, t, v, m)) for v in cols] +
                    [ratio(p, b), ratio(zp, b), ratio(p, g), ratio(zp, g)])
    gm = ["geomean"] + [""] * len(cols) + [f"{geomean(rel['pool']):.2f}x" if rel["pool"] else "-",
                                           f"{geomean(rel['zm:pool']):.2f}x" if rel["zm:pool"] else "-", "", ""]
    return header, rows + [gm]


def workload_table(res, w):
    cols = [v for v in res.column_variants() if res.threads(w) and
            any(res.get(w, t, v, m) is not None for t in res.threads(w) for m in res.workload(w)["headline"])]
    base = "zm:libc" if "zm:libc" in cols else "glibc"
    rows = []
    for t in res.threads(w):
        for m in res.workload(w)["headline"]:
            cells = []
            for v in cols:
                x, bx = res.get(w, t, v, m), res.get(w, t, base, m)
                c = fmt(m, x)
                if x is not None and bx and v != base and better(m):
                    c += f" ({x / bx:.2f}x)"
                cells.append(c)
            name = label(m) + (f", {t} thread{'s' if t > 1 else ''}" if len(res.threads(w)) > 1 else "")
            rows.append([name] + cells)
    return ["", *cols], rows, base


def instructions_table(res, targets):
    limits = {}
    for t in targets:
        if t["metric"] == "instructions_per_pair":
            for s in t["subjects"]:
                limits[s] = f"{t['op']} {t['threshold']:g}"
    rows = []
    for v in res.variants():
        n = res.get("callgrind", 1, v, "instructions_per_pair")
        if n is not None:
            info = res.variant(v)
            what = "zmalloc+zfree" if info["mode"] == "api" else "malloc+free"
            rows.append([v, what, f"{n:.0f}", limits.get(v, "")])
    return ["variant", "pair", "instructions per pair", "target"], rows


def cost_table(res):
    rows = []
    for v in res.variants():
        base = res.variant(v).get("cost_of")
        if not base:
            continue
        for w, t in res.cases("all"):
            m = res.time_metric(w)
            a, b = res.get(w, t, v, m), res.get(w, t, base, m)
            if a is None or b is None:
                continue
            ra, rb = res.get(w, t, v, "peak_rss"), res.get(w, t, base, "peak_rss")
            rows.append([v, base, case_name(res, w, t), fmt(m, a), fmt(m, b), ratio(a, b), ratio(ra, rb)])
    return ["variant", "compared with", "workload", "time", "its base", "time ratio", "peak RSS ratio"], rows


def allocator_info_table(res):
    vs = [v for v in res.variants("api") if res.get("redis", 1, v, "alloc_allocated") is not None]
    keys = [("alloc_allocated", "allocated"), ("alloc_active", "active"), ("alloc_resident", "resident"),
            ("alloc_retained", "retained"), ("alloc_muzzy", "muzzy"), ("alloc_frag_smallbins", "frag_smallbins"),
            ("used_memory", "zmalloc_used_memory"), ("rss", "RSS")]
    rows = []
    for v in vs:
        r = [fmt("peak_rss", res.get("redis", 1, v, k)) for k, _ in keys]
        r += [fmt("ratio", res.get("redis", 1, v, "allocator_frag_ratio")),
              fmt("ratio", res.get("redis", 1, v, "allocator_rss_ratio"))]
        rows.append([v] + r)
    return ["variant"] + [k[1] for k in keys] + ["active/allocated", "resident/active"], rows


# ---------------------------------------------------------------- verdicts

def describe_ref(tgt):
    ref = tgt.get("ref")
    if ref is None:
        return ""
    if isinstance(ref, str):
        return ref
    if "metric" in ref:
        return label(ref["metric"])
    if "cost_of" in ref:
        return "the same build without it"
    key = "best_of" if "best_of" in ref else "lowest_of"
    return ("best of " if key == "best_of" else "lowest of ") + "/".join(ref[key])


def measured(res, row):
    tgt = row["target"]
    if row["verdict"] == "n/a":
        return row.get("why", "")
    if tgt["aggregate"] == "geomean":
        n = len(row["cases"])
        return f"{row['value']:.2f}x over {n} case{'s' if n > 1 else ''}"
    c = row["worst"]
    where = case_name(res, c["workload"], c["threads"]) if c["workload"] != "callgrind" else ""
    if tgt.get("ref") is None:
        val = fmt(c["metric"], c["value"])
        return f"{val}" + (f" ({where})" if where and len(row["cases"]) > 1 else "")
    return (f"worst {c['ratio']:.2f}x on {where} ({fmt(c['metric'], c['value'])} vs "
            f"{c['ref']} {fmt(c['metric'], c['ref_value'])})" if len(row["cases"]) > 1 else
            f"{c['ratio']:.2f}x ({fmt(c['metric'], c['value'])} vs {c['ref']} {fmt(c['metric'], c['ref_value'])})")


def verdict_table(res, rows):
    out = []
    for r in rows:
        t = r["target"]
        n_bad = sum(1 for c in r["cases"] if not verdicts.OPS[t["op"]](c["ratio"], t["threshold"]))
        tally = f", {n_bad} of {len(r['cases'])} cases miss" if t["aggregate"] == "each" and len(r["cases"]) > 1 else ""
        out.append([f"#{t['issue']}", r["subject"], t["text"], measured(res, r) + tally, r["verdict"]])
    return ["issue", "subject", "target", "measured", "result"], out


def losses_list(res, rows):
    """One line per (subject, workload) that misses a per-workload target,
    worst first: what it misses and by how much."""
    ls = verdicts.losses(rows)
    if not ls:
        return "No case misses a per-workload target in this run (suspicious: check the workloads)."
    groups = {}
    for c in ls:
        groups.setdefault((c["subject"], c["workload"], c["threads"]), []).append(c)
    out = []
    for (subject, w, t), cs in sorted(groups.items(), key=lambda kv: -max(c["ratio"] for c in kv[1])):
        parts = []
        for c in sorted(cs, key=lambda c: -c["ratio"]):
            what = "peak RSS" if c["metric"] == "peak_rss" else "time"
            parts.append(f"{what} {c['ratio']:.2f}x {c['ref']}'s ({fmt(c['metric'], c['value'])} against "
                         f"{fmt(c['metric'], c['ref_value'])}, target {c['target']['op']} "
                         f"{c['target']['threshold']:g}x)")
        out.append(f"- {subject} on {case_name(res, w, t)}: " + "; ".join(parts))
    return "\n".join(out)


# ---------------------------------------------------------------- text

def machine_lines(res):
    m = res.meta
    la0, la1 = m.get("loadavg_start"), m.get("loadavg_end")
    load = (f"1-minute load average {la0[0]:.2f} at the start, {la1[0]:.2f} at the end" if la0 and la1 else "load unknown")
    if m.get("loadavg_during"):
        lo, med, hi = m["loadavg_during"]
        load += f" (min {lo:.1f}, median {med:.1f}, max {hi:.1f} during the runs, on {m['cores']} cores)"
    return [f"Date: {m['date']}", f"CPU: {m['cpu']}, {m['cores']} cores; Linux {m['kernel']}",
            f"Run: `{m['command']}` at {m.get('git', '?')}, median of {m['reps']} interleaved repetitions, "
            f"scale {m['scale']:g}, {m['seconds']:.0f} s of runs; {load}"]


def text_report(doc):
    res = Results(doc)
    tg = verdicts.load_targets()
    rows = verdicts.check(res, tg)
    out = ["zmalloc bench: " + "; ".join(machine_lines(res)), ""]
    out += ["time (every workload run both ways):", text(*summary_table(res, "time")), ""]
    out += ["CPU time of the process (user+system; less disturbed by load than the wall time):",
            text(*summary_table(res, "cpu_seconds")), ""]
    out += ["peak RSS:", text(*summary_table(res, "peak_rss")), ""]
    for w in res.workloads():
        if set(w["modes"]) == {"api", "malloc"} and w["name"] != "fastpath":
            continue
        h, r, base = workload_table(res, w["name"])
        if r:
            out += [f"{w['name']}: {w['title']} ((Nx) = ratio to {base})", text(h, r), ""]
    h, r = instructions_table(res, tg)
    if r:
        out += ["callgrind, loop included:", text(h, r), ""]
    h, r = cost_table(res)
    if r:
        out += ["cost rows:", text(h, r), ""]
    out += ["losses:", losses_list(res, rows), "", "targets:"]
    out += [f"  {r['verdict']:10} #{r['target']['issue']} {r['subject']}: {r['target']['text']}: {measured(res, r)}"
            for r in rows]
    if res.meta.get("errors"):
        out += ["", "failed runs:"] + [f"  {e}" for e in res.meta["errors"]]
    return "\n".join(out)


# ---------------------------------------------------------------- docs

def included_block(results_dir, name, script):
    """Another benchmark's markdown report (bench/preload, bench/redis)."""
    p = os.path.join(results_dir, f"{name}.md")
    if not os.path.exists(p):
        return f"_Not in these results: {script} runs with `make bench FULL=1` or its own target._"
    body = open(p).read().strip()
    body = re.sub(r"^(#+)", r"\1##", body, flags=re.M)  # nest its headings
    return f"_From `{name}.md` beside the results, written by {script}._\n\n{body}"


def blocks(doc, results_dir, charts_dir, md_dir):
    res = Results(doc)
    tg = verdicts.load_targets()
    rows = verdicts.check(res, tg)
    m = res.meta
    mach = machine_lines(res)
    b = {"machine": "\n".join(f"- {x}" for x in mach) + "\n- Variants:\n" +
         "\n".join(f"  - `{v['name']}`: {v.get('what') or ''} ({os.path.basename(v.get('lib') or '?')})"
                   for v in m["variants"]) +
         ("\n- Skipped: " + "; ".join(m["skipped"]) if m.get("skipped") else "") +
         ("\n- Failed runs: " + "; ".join(m["errors"]) if m.get("errors") else "")}
    b["summary-time"] = md(*summary_table(res, "time"))
    b["summary-cpu"] = md(*summary_table(res, "cpu_seconds"))
    b["summary-rss"] = md(*summary_table(res, "peak_rss"))
    b["losses"] = losses_list(res, rows)
    b["targets"] = md(*verdict_table(res, rows))
    h, r = instructions_table(res, tg)
    b["instructions"] = md(h, r) if r else "_No callgrind counts in these results (QUICK=1 or CALLGRIND=0)._"
    h, r = cost_table(res)
    b["costs"] = md(h, r) if r else "_No cost rows in these results._"
    tables = []
    for w in res.workloads():
        if w.get("classic"):
            continue
        h, r, base = workload_table(res, w["name"])
        if r:
            tables.append(f"#### {w['name']}: {w['title']}\n\n(Nx) = ratio to `{base}`.\n\n" + md(h, r))
    b["tables"] = "\n\n".join(tables)
    h, r = allocator_info_table(res)
    b["allocator-info"] = md(h, r) if r else "_The redis workload was not run._"
    b.update(claims.blocks(res, fmt, label))
    made = charts.draw(res, charts_dir)
    rel = os.path.relpath(charts_dir, md_dir)
    b["charts"] = "\n\n".join(f"![{alt}]({rel}/{name})" for name, alt in made) or "_No charts (gnuplot missing)._"
    b["preload"] = included_block(results_dir, "preload", "bench/preload/bench.sh")
    b["redis-server"] = included_block(results_dir, "redis", "bench/redis/bench.sh")
    return b


def replace_block(text_, name, body):
    pat = re.compile(rf"(<!-- BEGIN GENERATED {re.escape(name)} -->\n).*?(<!-- END GENERATED {re.escape(name)} -->)", re.S)
    if not pat.search(text_):
        return text_ + f"\n<!-- BEGIN GENERATED {name} -->\n{body}\n<!-- END GENERATED {name} -->\n"
    return pat.sub(lambda mm: mm.group(1) + body + "\n" + mm.group(2), text_)


def write_docs(doc, template, out_md, charts_dir, results_dir=None):
    """Fill template's generated blocks from doc into out_md (which may be
    the template itself); charts go to charts_dir. Returns out_md."""
    text_ = open(template).read()
    os.makedirs(charts_dir, exist_ok=True)
    for name, body in blocks(doc, results_dir or os.path.dirname(out_md), charts_dir,
                             os.path.dirname(os.path.abspath(out_md))).items():
        text_ = replace_block(text_, name, body)
    with open(out_md, "w") as f:
        f.write(text_)
    return out_md


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="docs/benchmarks/results.json")
    ap.add_argument("--docs", default="docs/benchmarks.md", help="the template")
    ap.add_argument("--out", default=None, help="where to write (default: the template itself)")
    ap.add_argument("--charts", default=None, help="chart directory (default: beside the results)")
    ap.add_argument("--text", action="store_true", help="print the text report too")
    a = ap.parse_args()
    doc = json.load(open(a.results))
    rdir = os.path.dirname(os.path.abspath(a.results))
    out = write_docs(doc, a.docs, a.out or a.docs, a.charts or rdir, rdir)
    if a.text:
        print(text_report(doc))
    print(f"report: {out} regenerated from {a.results}")


if __name__ == "__main__":
    main()
