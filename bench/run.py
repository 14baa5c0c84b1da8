#!/usr/bin/env python3
"""bench/run.py: run zmbench on every backend, interleaved and repeated.

Called by bench/run.sh once the builds exist (build/bench-<backend>). One
process per (workload, threads, backend, repetition); within a repetition
each workload runs on every backend back to back, in an order rotated every
repetition, so slow drift of a shared machine falls on all backends alike.
Each figure is the median of the repetitions and also a ratio to glibc (the
libc backend) from the same run.

Writes build/bench/results.json and results.csv, prints the table, draws
build/bench/*.svg with gnuplot (bench/plot.gp) and regenerates the tables
of docs/benchmarks.md (bench/report.py). Standard library only.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

ALL_WORKLOADS = ["churn", "meta", "large", "prodcon", "redis", "realloc", "account", "fastpath", "smaps"]


def env_list(name, default):
    v = os.environ.get(name, "").replace(",", " ").split()
    return v if v else default


def cases(workloads, threads):
    """(workload, threads) pairs in run order."""
    out = []
    for w in workloads:
        if w == "churn":
            ts = threads
        elif w == "prodcon":
            ts = sorted({t - t % 2 for t in threads if t >= 2}) or [2]
            ts = [t for t in ts if t <= 8] or [2]
            if threads == [1, 2, 4, 8]:
                ts = [2, 4]
        elif w == "account":
            ts = sorted({1, max([t for t in threads if t <= 4] or [1])})
            if threads == [1, 2, 4, 8]:
                ts = [1, 4]
        else:
            ts = [1]
        out += [(w, t) for t in ts]
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


class Progress:
    def __init__(self, total):
        self.total, self.done, self.t0 = total, 0, time.time()
        self.tty = sys.stderr.isatty()

    def show(self, text):
        el = time.time() - self.t0
        eta = el / self.done * (self.total - self.done) if self.done else 0
        line = f"[{self.done + 1}/{self.total} {el:4.0f}s, ~{eta:3.0f}s left] {text}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def step(self):
        self.done += 1

    def end(self):
        if self.tty:
            sys.stderr.write("\r\033[K")
        sys.stderr.write(f"bench: {self.done} runs in {time.time() - self.t0:.0f}s\n")


def run_one(build, backend, workload, threads, scale, timeout):
    exe = os.path.join(build, f"bench-{backend}", "bench", "zmbench")
    cmd = [exe, "-w", workload, "-t", str(threads), "-s", str(scale)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timeout after {timeout}s"
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {p.stderr.strip()[-300:]}"
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line), None
    return None, "no result line"


def callgrind_counts(build, backends):
    """Instructions per zmalloc+zfree pair on the fast path: the difference
    of two runs of different lengths, so start-up and warm-up cancel."""
    out = {}
    if not shutil.which("valgrind"):
        print("bench: callgrind skipped (valgrind not installed)")
        return out
    for b in backends:
        exe = os.path.join(build, f"bench-{b}", "bench", "zmbench")
        counts = []
        for scale in (0.005, 0.015):  # 100k and 300k pairs
            sys.stderr.write(f"\r\033[Kcallgrind {b} {scale}" if sys.stderr.isatty() else "")
            p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                exe, "-w", "fastpath", "-s", str(scale)],
                               capture_output=True, text=True, timeout=300)
            m = re.search(r"Collected\s*:\s*(\d+)", p.stderr)
            if p.returncode != 0 or not m:
                counts = None
                break
            counts.append(int(m.group(1)))
        if counts:
            out[b] = (counts[1] - counts[0]) / 200000.0
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--backends", required=True)
    ap.add_argument("--debug-backends", default="")
    ap.add_argument("--docs", default="docs/benchmarks.md")
    a = ap.parse_args()

    env = lambda name, default: os.environ.get(name) or default  # empty = unset
    quick = env("QUICK", "0") == "1"
    backends = a.backends.split()
    debug_backends = a.debug_backends.split()
    workloads = [w for w in env_list("WORKLOADS", ALL_WORKLOADS)]
    bad = [w for w in workloads if w not in ALL_WORKLOADS]
    if bad:
        sys.exit(f"bench: unknown workload(s) {' '.join(bad)}; known: {' '.join(ALL_WORKLOADS)}")
    threads = [int(t) for t in env_list("THREADS", ["1", "2", "4", "8"])]
    reps = int(env("REPS", "2" if quick else "3"))
    scale = float(env("SCALE", "0.2" if quick else "1"))
    timeout = 300

    plan = cases(workloads, threads)
    # Verification-mode builds run the churn workload on one thread only.
    jobs_per_rep = len(plan) * len(backends) + (len(debug_backends) if ("churn", 1) in plan else 0)
    prog = Progress(jobs_per_rep * reps)
    raw = {}  # (workload, threads, backend) -> list of metric dicts
    libs = {}
    errors = []
    load0 = loadavg()
    t_start = time.time()
    for rep in range(reps):
        for (w, t) in plan:
            order = backends[rep % len(backends):] + backends[:rep % len(backends)]
            if w == "churn" and t == 1:
                order = order + debug_backends
            for b in order:
                prog.show(f"rep {rep + 1}/{reps}  {w} t={t}  {b}")
                res, err = run_one(a.build, b, w, t, scale, timeout)
                prog.step()
                if err:
                    errors.append(f"{b} {w} t={t} rep {rep + 1}: {err}")
                    continue
                libs[b] = res.get("lib", b)
                raw.setdefault((w, t, b), []).append(res["m"])
    prog.end()
    for e in errors:
        print("bench: FAILED", e)

    results = []
    for (w, t, b), runs in raw.items():
        metrics = {}
        for k in runs[0]:
            vals = [r[k] for r in runs if k in r]
            metrics[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                          "runs": vals}
        results.append({"workload": w, "threads": t, "backend": b, "metrics": metrics})

    cg = {}
    if not quick and env("CALLGRIND", "1") != "0" and "fastpath" in workloads:
        cg = callgrind_counts(a.build, backends)

    doc = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "quick": quick,
            "reps": reps,
            "scale": scale,
            "seconds": round(time.time() - t_start, 1),
            "loadavg_start": load0,
            "loadavg_end": loadavg(),
            "backends": backends,
            "debug_backends": debug_backends,
            "libs": libs,
            "threads": threads,
            "workloads": workloads,
            "errors": errors,
        },
        "results": results,
        "callgrind_instructions_per_pair": cg,
    }
    report.add_ratios(doc)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    report.write_csv(doc, os.path.join(a.out, "results.csv"))
    print(report.text_table(doc))
    print(report.text_targets(doc))
    charts = report.charts(doc, a.out, os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot.gp"))
    print(f"bench: results in {a.out}/results.json, results.csv" + (", " + ", ".join(charts) if charts else ""))
    # A QUICK run is too small to document; BENCH_DOCS=1 forces it.
    if env("BENCH_DOCS", "0" if quick else "1") != "0":
        report.write_docs(doc, a.docs, a.out)
        print(f"bench: {a.docs} regenerated")
    else:
        print(f"bench: {a.docs} left as it is (QUICK=1 or BENCH_DOCS=0)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
