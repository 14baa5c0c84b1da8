"""bench/claims.py: the seed's claims, each checked from a results file.

The seed (a blog post on Redis's zmalloc.c) ends with claims about jemalloc
and about zmalloc itself; docs/benchmarks.md answers each with a generated
block: a small table and a verdict computed by the rules below from the
medians ("holds", "partly holds", "does not hold here"). Claims about the
allocators themselves use the plain-malloc runs (glibc, jemalloc,
tcmalloc); the metadata and large-block claims need the zmalloc API's
figures and use the zm:* runs. blocks(res, fmt, label) returns
{block name: markdown}.
"""


def _table(res, fmt, rows, cols):
    out = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, w, t, m in rows:
        out.append(f"| {name} | " + " | ".join(fmt(m, res.get(w, t, c, m)) for c in cols) + " |")
    return "\n".join(out)


def blocks(res, fmt, label):
    b = {}
    cores = res.meta["cores"]
    have = set(res.variants())
    # "The more cores, the more threads, the faster jemalloc allocates."
    ts = res.threads("churn")
    if ts and {"jemalloc", "glibc"} <= have:
        cols = [c for c in ("glibc", "jemalloc", "tcmalloc", "mimalloc", "pool") if c in have]
        txt = _table(res, fmt, [(f"{t} thread{'s' if t > 1 else ''}, ops/s", "churn", t, "ops_per_s") for t in ts], cols)
        top = min(cores, max(ts))
        j1, j2 = res.get("churn", 1, "jemalloc", "ops_per_s"), res.get("churn", top, "jemalloc", "ops_per_s")
        g1, g2 = res.get("churn", 1, "glibc", "ops_per_s"), res.get("churn", top, "glibc", "ops_per_s")
        if j1 and j2 and g1 and g2 and top > 1:
            sj, sg = j2 / j1, g2 / g1
            jm = [res.get("churn", t, "jemalloc", "ops_per_s") / res.get("churn", t, "glibc", "ops_per_s")
                  for t in ts if t > 1 and res.get("churn", t, "glibc", "ops_per_s")]
            holds = sj > 1.3 and min(jm) >= 1.0
            verdict = ("**Holds as far as this machine can show**" if holds else
                       "**Does not hold here**" if sj <= 1.0 and min(jm) < 1.0 else "**Partly holds here**")
            txt += (f"\n\nFrom 1 to {top} threads jemalloc's throughput changes by {sj:.2f}x (glibc {sg:.2f}x); "
                    f"above one thread jemalloc runs at {min(jm):.2f}x-{max(jm):.2f}x glibc's throughput. "
                    f"{verdict}. Beyond {cores} threads the threads share {cores} cores: those rows measure "
                    "behaviour under oversubscription, not scaling.")
        b["claim-threads"] = txt
    # "jemalloc's metadata for small objects is slightly more than tcmalloc's."
    if res.get("meta", 1, "zm:jemalloc", "rss_per_requested") is not None:
        cols = [c for c in ("zm:libc", "zm:jemalloc", "zm:tcmalloc", "zm:mimalloc", "zm:pool") if c in have]
        txt = _table(res, fmt, [(label(m), "meta", 1, m) for m in ("rss_per_requested", "overhead_bytes_per_object")],
                     cols)
        je, tc = res.get("meta", 1, "zm:jemalloc", "rss_per_requested"), res.get("meta", 1, "zm:tcmalloc", "rss_per_requested")
        if je and tc:
            n = res.get("meta", 1, "zm:jemalloc", "objects") or 0
            txt += (f"\n\njemalloc uses {je / tc:.3f}x tcmalloc's RSS for the same {n:.0f} objects. " +
                    ("**Holds here**: jemalloc spends more memory per small object than tcmalloc." if je > tc * 1.005
                     else "**Does not hold here**: jemalloc spends no more memory per small object than tcmalloc" +
                     (" (within 0.5%)." if je > tc * 0.995 else ".")))
        b["claim-metadata"] = txt
    # "jemalloc fragments less than tcmalloc on large allocations."
    ms = ["during_rss_per_live", "peak_rss_per_peak_live", "after_rss_per_live", "purged_rss_per_live"]
    if res.get("large", 1, "zm:jemalloc", ms[0]) is not None:
        cols = [c for c in ("zm:libc", "zm:jemalloc", "zm:tcmalloc", "zm:mimalloc", "zm:pool") if c in have]
        txt = _table(res, fmt, [(label(m), "large", 1, m) for m in ms], cols)
        cmp = [(m, res.get("large", 1, "zm:jemalloc", m), res.get("large", 1, "zm:tcmalloc", m)) for m in ms[:3]]
        if all(j and t for _, j, t in cmp):
            wins = [m for m, j, t in cmp if j < t * 0.99]
            loses = [m for m, j, t in cmp if j > t * 1.01]
            txt += ("\n\njemalloc/tcmalloc RSS per live byte: " + ", ".join(f"{label(m)} {j / t:.2f}x" for m, j, t in cmp)
                    + ". " + ("**Holds here.**" if not loses and wins else
                              "**Does not hold here.**" if not wins else "**Partly holds here.**"))
        b["claim-large"] = txt
    # "Finer size classes mean less lock contention than ptmalloc."
    pairs = [("prodcon", t) for t in res.threads("prodcon")] + [("churn", t) for t in res.threads("churn") if t > 1]
    if pairs and {"jemalloc", "glibc"} <= have:
        cols = [c for c in ("glibc", "jemalloc", "tcmalloc", "mimalloc", "pool") if c in have]
        txt = _table(res, fmt, [(f"{w}, {t} threads, ops/s", w, t, "ops_per_s") for w, t in pairs], cols)
        rel = [(w, t, res.get(w, t, "jemalloc", "ops_per_s"), res.get(w, t, "glibc", "ops_per_s")) for w, t in pairs]
        rel = [(w, t, j / g) for w, t, j, g in rel if j and g]
        if rel:
            ahead = [r for r in rel if r[2] > 1.0]
            txt += ("\n\njemalloc relative to glibc (ptmalloc): " + ", ".join(f"{w} t={t} {r:.2f}x" for w, t, r in rel)
                    + ". " + ("**Holds here**: jemalloc is ahead of ptmalloc on every multi-threaded workload."
                              if len(ahead) == len(rel) else
                              "**Does not hold here**: jemalloc is not ahead of ptmalloc on any multi-threaded workload."
                              if not ahead else
                              "**Partly holds here**: jemalloc is ahead on some multi-threaded workloads, not all."))
        b["claim-contention"] = txt
    # "zmalloc uses memory pools ... avoids fragmentation and system-call overhead": our pool.
    if {"zm:pool", "zm:libc"} <= have:
        rows = ["| | zm:pool | zm:libc | zm:jemalloc | pool / libc |", "|---|---:|---:|---:|---:|"]
        score = {"speed": [0, 0, 0], "memory": [0, 0, 0]}  # better than libc, than jemalloc, rows
        for kind, w, t, m, hi in [("speed", "fastpath", 1, "ns_per_pair", False), ("speed", "churn", 1, "ops_per_s", True),
                                  ("speed", "churn", 2, "ops_per_s", True), ("speed", "prodcon", 2, "ops_per_s", True),
                                  ("speed", "redis", 1, "seconds", False), ("memory", "meta", 1, "rss_per_requested", False),
                                  ("memory", "redis", 1, "frag_ratio", False), ("memory", "redis", 1, "peak_rss", False),
                                  ("memory", "large", 1, "during_rss_per_live", False),
                                  ("memory", "large", 1, "after_rss_per_live", False)]:
            p, g, j = (res.get(w, t, v, m) for v in ("zm:pool", "zm:libc", "zm:jemalloc"))
            if p is None:
                continue
            sc = score[kind]
            sc[2] += 1
            sc[0] += bool(g) and (p > g if hi else p < g)
            sc[1] += bool(j) and (p > j if hi else p < j)
            rows.append(f"| {w} t={t}: {label(m)} | {fmt(m, p)} | {fmt(m, g)} | {fmt(m, j)} | "
                        f"{(p / g if g else 0):.2f}x |")
        sp, me = score["speed"], score["memory"]
        verdict = ("**Holds here**" if sp[0] == sp[2] and me[0] == me[2] else
                   "**Does not hold here**" if sp[0] + me[0] == 0 else "**Partly holds here**")
        rows.append(f"\nThrough the zmalloc API the pool backend beats the libc backend on {sp[0]} of {sp[2]} speed rows "
                    f"and {me[0]} of {me[2]} memory rows, and the jemalloc backend on {sp[1]} of {sp[2]} speed rows and "
                    f"{me[1]} of {me[2]} memory rows: {verdict} for our pool on these rows (the classic workloads above "
                    "are the harder test). Redis's own zmalloc has no pools at all: on Redis the claim is simply false.")
        b["claim-pool"] = "\n".join(rows)
    # Verification mode's cost: the cost rows of the debug builds.
    rows = []
    for v in res.variants():
        base = (res.variant(v) or {}).get("cost_of")
        if not base or "debug" not in v:
            continue
        a, d = res.get("churn", 1, base, "ops_per_s"), res.get("churn", 1, v, "ops_per_s")
        if a and d:
            rows.append(f"- churn, 1 thread, {base}: plain {fmt('ops_per_s', a)} ops/s, verification mode "
                        f"{fmt('ops_per_s', d)} ops/s: **{a / d:.2f}x slower** (target <= 3x).")
    b["claim-debug"] = "\n".join(rows) or "_No verification-mode figures in these results._"
    return b
