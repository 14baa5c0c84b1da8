#!/usr/bin/env python3
"""bench/redis/report.py: the tables of bench/redis/bench.sh's raw figures.

Usage: report.py RAW_DIR OUT.md OUT.json

RAW_DIR holds what bench.sh wrote: meta.json, throughput.txt (one line per
benchmark run), memory.txt (INFO memory at each step of the fragmentation
scenario), defrag.txt (one line per defrag phase), calibration.txt and
loadavg.txt. Nothing here measures: it only takes medians and spreads and
compares them with issue 11's targets, which it reports and never enforces
(the machine is shared; a verdict says which cells are inside the noise).

Noise is shown two ways: the min-max of each build's rounds, and the
min-max of the per-round ratio pool/other (the two runs of a round are
seconds apart, so slow drifts of the machine's load cancel in it). A cell
whose whole per-round ratio range is under 1.0 is a loss beyond the noise;
one whose range straddles 1.0 is not decided by this run.
"""
import json
import os
import statistics
import sys

TESTS = ["SET", "GET", "LPUSH", "HSET", "ZADD"]
SIZES = [3, 1024]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def read_rows(path, ncols):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            f = line.split()
            if len(f) >= ncols:
                rows.append(f)
    return rows


def num(x):
    try:
        return float(x)
    except ValueError:
        return float("nan")


def mib(x):
    return f"{x / 1048576:.1f}"


def md_table(head, rows, right_from=1):
    out = ["| " + " | ".join(head) + " |",
           "| " + " | ".join("---" if i < right_from else "---:" for i in range(len(head))) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main():
    raw, out_md, out_json = sys.argv[1:4]
    meta = json.load(open(os.path.join(raw, "meta.json")))
    builds = meta["builds"]
    ref = builds[0]
    others = builds[1:]
    thr = [dict(server=f[0], build=f[1], size=int(f[2]), test=f[3], round=int(f[4]), requests=int(f[5]),
                rps=num(f[6]), p50=num(f[7]), p99=num(f[8]), used=num(f[9]), rss=num(f[10]))
           for f in read_rows(os.path.join(raw, "throughput.txt"), 11)]
    mem = [dict(server=f[0], build=f[1], step=f[2], keys=int(f[3]), used=num(f[4]), rss=num(f[5]),
                mem_frag=num(f[6]), alloc_frag=num(f[7]), alloc_frag_bytes=num(f[8]),
                allocated=num(f[9]), active=num(f[10]), resident=num(f[11]))
           for f in read_rows(os.path.join(raw, "memory.txt"), 12)]
    dfg = [dict(server=f[0], build=f[1], status=f[2].replace("_", " "), wall_s=num(f[3]), cpu_ms=num(f[4]),
                defrag_time_ms=num(f[5]), hits=num(f[6]), misses=num(f[7]))
           for f in read_rows(os.path.join(raw, "defrag.txt"), 8)]
    loads = [num(x) for x in open(os.path.join(raw, "loadavg.txt")).read().split()] \
        if os.path.exists(os.path.join(raw, "loadavg.txt")) else []

    L = []
    L.append("## Redis and Valkey: zmalloc's pool against the stock builds")
    L.append("")
    L.append(f"{meta['date']} (started {meta['started']}, {meta['seconds']} s), commit `{meta['commit']}`, "
             f"{meta['cores']} cores ({meta['cpu']}), "
             + (f"load average (1 min) during the run {min(loads):.1f} to {max(loads):.1f}, median {med(loads):.1f}"
                if loads else "load average not sampled")
             + f"; benchmark at nice {meta['nice']}"
             + (", server pinned to CPU 1 and client to CPU 0 (taskset)" if meta["pinned"] else ", not pinned")
             + (". QUICK=1 run: short cells, few rounds, noisy." if meta["quick"] else "."))
    L.append("")
    for s in meta["servers"]:
        L.append(f"- {s} ({meta['versions'].get(s, '?')}):")
        for b in builds:
            what = {"pool": "zmalloc's pool: the tree tests/redis/check.sh builds (`make MALLOC=libc`, shim zmalloc.[ch]"
                            + (", allocator_defrag.[ch]" if s.startswith("valkey-9") else "") + ", libzmalloc.a)",
                    "jemalloc": "stock: the server's source, default `make` (its bundled deps/jemalloc)",
                    "libc": "stock: the server's source, `make MALLOC=libc` (glibc malloc)"}.get(b, b)
            if s == "debian" and b != "pool":
                what += " (Debian's patch 0004, USE_SYSTEM_JEMALLOC, reverted: it breaks the bundled-jemalloc link)"
            L.append(f"  - `{b}`: {what}; mem_allocator `{meta['allocators'].get(s + '/' + b, '?')}`")
    L.append("")

    verdict = []
    js = {"meta": meta, "loadavg": loads, "throughput": [], "fragmentation": mem, "defrag": dfg}
    if thr:
        L.append(f"### Throughput (requests/s: median of {meta['reps']} interleaved rounds, min-max in brackets)")
        L.append("")
        n_desc = (f"fixed `-n {meta['fixed_requests']}`" if meta["fixed_requests"] else
                  f"`-n` calibrated per cell so the fastest build's run lasts {meta['cell_seconds']} s "
                  "(raised after each round to the fastest rate seen so far: `requests` gives the range)")
        L.append(f"`<server>-benchmark -q --csv -t <test> -P {meta['pipeline']} -c {meta['clients']} "
                 f"-r {meta['keyspace']} -d <size>` over loopback, {n_desc}, FLUSHALL before each run. "
                 f"Ratio: {ref} / other of the medians, then in brackets the min-max of the per-round ratios "
                 "(a round runs the builds back to back). Noise: the largest (max-min)/median of a build's rounds.")
        for s in meta["servers"]:
            rows = []
            short = float("inf")
            for size in SIZES:
                for t in TESTS:
                    c = [r for r in thr if r["server"] == s and r["size"] == size and r["test"] == t]
                    if not c:
                        continue
                    by = {b: [r for r in c if r["build"] == b] for b in builds}
                    ns = sorted({r["requests"] for r in c})
                    row = [t, f"{size} B", str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"]
                    noise = 0.0
                    entry = {"server": s, "test": t, "value_bytes": size, "requests": c[0]["requests"]}
                    for b in builds:
                        v = [r["rps"] for r in by[b]]
                        m = med(v)
                        row.append(f"{m / 1000:.0f}k ({min(v) / 1000:.0f}-{max(v) / 1000:.0f})")
                        noise = max(noise, (max(v) - min(v)) / m * 100)
                        short = min(short, min(r["requests"] / r["rps"] for r in by[b]))
                        entry[b] = {"rps": v, "median": m, "p50_ms": med([r["p50"] for r in by[b]]),
                                    "p99_ms": med([r["p99"] for r in by[b]]),
                                    "used_memory": med([r["used"] for r in by[b]]),
                                    "rss": med([r["rss"] for r in by[b]])}
                    for o in others:
                        pr = {r["round"]: r["rps"] for r in by[ref]}
                        po = {r["round"]: r["rps"] for r in by[o]}
                        paired = [pr[k] / po[k] for k in pr if k in po]
                        ratio = entry[ref]["median"] / entry[o]["median"]
                        row.append(f"{ratio:.2f} ({min(paired):.2f}-{max(paired):.2f})")
                        entry[f"ratio_{o}"] = ratio
                        entry[f"paired_{o}"] = paired
                        if o == "jemalloc":
                            verdict.append((s, t, size, ratio, min(paired), max(paired)))
                    row.append(f"{noise:.0f}%")
                    rows.append(row)
                    js["throughput"].append(entry)
            L.append("")
            durs = [r["requests"] / r["rps"] for r in thr if r["server"] == s]
            L.append(f"#### {s} ({meta['versions'].get(s, '?')}): runs of {short:.2f} to {max(durs):.1f} s, "
                     f"median {med(durs):.1f} s; {sum(d < 2 for d in durs)} of {len(durs)} under 2 s")
            L.append("")
            L.append(md_table(["test", "value", "requests"] + builds + [f"{ref} / {o}" for o in others] + ["noise"],
                              rows, right_from=2))
        L.append("")
        L.append("### Latency and memory of the same runs (medians)")
        L.append("")
        L.append("p50 and p99 latency in ms as the benchmark tool reports them (pipelined: a request's latency "
                 f"includes the {meta['pipeline'] - 1} before it in its batch); used_memory (INFO) and the "
                 "process RSS (/proc VmRSS) right after each run, in MiB.")
        for s in meta["servers"]:
            rows = []
            for e in js["throughput"]:
                if e["server"] != s:
                    continue
                rows.append([e["test"], f"{e['value_bytes']} B"]
                            + ["/".join(f"{e[b]['p50_ms']:.3f}" for b in builds)]
                            + ["/".join(f"{e[b]['p99_ms']:.3f}" for b in builds)]
                            + ["/".join(mib(e[b]["used_memory"]) for b in builds)]
                            + ["/".join(mib(e[b]["rss"]) for b in builds)])
            L.append("")
            L.append(f"#### {s}: {' / '.join(builds)}")
            L.append("")
            L.append(md_table(["test", "value", "p50 ms", "p99 ms", "used_memory MiB", "RSS MiB"], rows, right_from=2))

    if mem:
        L.append("")
        L.append("### Fragmentation and active defrag")
        L.append("")
        L.append(f"{meta['nkeys']} keys by DEBUG POPULATE ({meta['fill_mix']}: value bytes:% of keys), about half "
                 "of them deleted at random (the same keys on every build), a quarter refilled with other sizes "
                 f"({meta['refill_mix']}); then `activedefrag yes` (started with `{meta['defrag_args']}`) until "
                 f"the server reports it idle for 3 s in a row, at most {meta['defrag_timeout']} s; then MEMORY PURGE. "
                 "INFO memory 1.5 s after each step.")
        L.append("")
        rows = []
        for s in meta["servers"]:
            for step in ["fill", "refill", "defrag", "purge"]:
                for b in builds:
                    for m in mem:
                        if m["server"] == s and m["build"] == b and m["step"] == step:
                            rows.append([s, b, step, str(m["keys"]), mib(m["used"]), mib(m["rss"]),
                                         f"{m['alloc_frag']:.2f}", mib(m["alloc_frag_bytes"]), f"{m['mem_frag']:.2f}"])
        L.append(md_table(["server", "build", "step", "keys", "used_memory MiB", "RSS MiB", "allocator_frag_ratio",
                           "allocator_frag_bytes MiB", "mem_fragmentation_ratio"], rows, right_from=3))
        L.append("")
        L.append("Defrag phase (from `activedefrag yes` to the end of the wait): how it ended, wall time, the "
                 "server process's CPU time (user + system of all its threads, /proc/<pid>/stat; the server does "
                 "nothing else then but answer INFO ten times a second), INFO's total_active_defrag_time (the time "
                 "the server spent with fragmentation over its threshold, not CPU time), hits and misses.")
        L.append("")
        rows = [[d["server"], d["build"], d["status"], f"{d['wall_s']:.1f} s", f"{d['cpu_ms']:.0f} ms",
                 f"{d['defrag_time_ms']:.0f} ms", f"{d['hits']:.0f}", f"{d['misses']:.0f}"] for d in dfg]
        L.append(md_table(["server", "build", "ended", "wall", "process CPU", "total_active_defrag_time", "hits",
                           "misses"], rows, right_from=3))

    L.append("")
    L.append("### Against issue 11's targets (reported, not enforced)")
    L.append("")
    for s in meta["servers"]:
        v = [x for x in verdict if x[0] == s]
        if v:
            lows = [x for x in v if x[3] < 1.0]
            clear = [x for x in v if x[5] < 1.0]
            wins = [x for x in v if x[4] >= 1.0]
            worst = min(v, key=lambda x: x[3])
            L.append(f"- {s} throughput, {ref} / jemalloc >= 1.0 in each cell: "
                     + ("met in every cell's median" if not lows else f"{len(lows)} of {len(v)} medians under 1.0")
                     + f"; worst {worst[1]} {worst[2]} B at {worst[3]:.2f}"
                     + (f"; under 1.0 in every round (beyond the noise): "
                        + ", ".join(f"{x[1]} {x[2]} B {x[3]:.2f}" for x in clear) if clear else
                        "; no cell under 1.0 in every round")
                     + f"; over 1.0 in every round: {len(wins)} of {len(v)}.")
        d = {x["build"]: x for x in dfg if x["server"] == s}
        m = {x["build"]: x for x in mem if x["server"] == s and x["step"] == "defrag"}
        if ref in d and "jemalloc" in d and ref in m and "jemalloc" in m:
            p, j = m[ref], m["jemalloc"]
            ok_f = p["alloc_frag"] <= j["alloc_frag"]
            ok_r = p["rss"] <= j["rss"]
            ok_c = d[ref]["cpu_ms"] <= d["jemalloc"]["cpu_ms"]
            L.append(f"- {s} after active defrag ({ref} {d[ref]['status']}, jemalloc {d['jemalloc']['status']}): "
                     f"allocator_frag_ratio {p['alloc_frag']:.2f} vs {j['alloc_frag']:.2f} ({'met' if ok_f else 'not met'}), "
                     f"RSS {mib(p['rss'])} vs {mib(j['rss'])} MiB ({'met' if ok_r else 'not met'}), "
                     f"defrag CPU {d[ref]['cpu_ms']:.0f} vs {d['jemalloc']['cpu_ms']:.0f} ms ({'met' if ok_c else 'not met'}).")
    L.append("")
    open(out_md, "w").write("\n".join(L))
    json.dump(js, open(out_json, "w"), indent=1)


if __name__ == "__main__":
    main()
