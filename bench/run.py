#!/usr/bin/env python3
"""bench/run.py: build, run every workload on every variant, write the results.

Called by bench/run.sh (`make bench`). The builds are bench/build.py's; the
workloads are bench/workloads.json, the variants (columns) bench/variants.json.
One process per (workload, threads, variant, repetition); within a repetition
each case runs on every variant back to back, in an order rotated every
repetition, so slow drift of a shared machine falls on all variants alike.
Each figure is the median of the repetitions. Then callgrind counts the
instructions per alloc+free pair of the fastpath workload on every variant.

Writes build/bench/results.json (every run, medians, the machine) and
results.csv; bench/report.py turns them into the printed summary, the target
verdicts and build/bench/benchmarks.md with its charts. Never writes a
tracked file: `make bench-save` copies the results into docs/benchmarks/ and
`make bench-docs` regenerates docs/benchmarks.md from there.
"""
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build  # noqa: E402
import report  # noqa: E402
import results  # noqa: E402

ROOT = build.ROOT


def env(name, default):
    v = os.environ.get(name)
    return v if v else default  # an empty value reads as unset


def env_list(name):
    return os.environ.get(name, "").replace(",", " ").split()


def cases(workloads, threads_override):
    """(workload spec, threads) pairs in report order."""
    out = []
    for w in workloads:
        ts = w["threads"]
        if threads_override and len(ts) > 1:
            ts = threads_override
            if w["name"] == "prodcon":
                ts = sorted({t - t % 2 for t in ts if t >= 2}) or [2]
        out += [(w, t) for t in ts]
    return out


def runs_case(v, w, t):
    """Whether variant v runs workload w at t threads."""
    if v["mode"] not in w["modes"]:
        return False
    only = v.get("only")
    return not only or w["name"] in only or f"{w['name']}:{t}" in only


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
            return [float(x) for x in f.read().split()[:3]]
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
        sys.stderr.write(("\r\033[K" + line) if self.tty else (line + "\n"))
        sys.stderr.flush()

    def step(self):
        self.done += 1

    def end(self):
        if self.tty:
            sys.stderr.write("\r\033[K")
        sys.stderr.write(f"bench: {self.done} runs in {time.time() - self.t0:.0f}s\n")


def run_env(v):
    e = {k: x for k, x in os.environ.items() if k != "LD_PRELOAD"}
    e.update(v.get("env") or {})
    if v["mode"] == "malloc" and v.get("preload"):
        e["LD_PRELOAD"] = v["preload"]
    return e


def run_one(v, workload, threads, scale, timeout):
    """One zmbench process: its result line, plus cpu_seconds (user +
    system time of the whole process, which waiting for a CPU on a loaded
    machine does not inflate the way it does wall time)."""
    cmd = [v["exe"], "-w", workload, "-t", str(threads), "-s", f"{scale:g}"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=run_env(v))
        deadline = time.time() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                return None, f"timeout after {timeout}s"
            time.sleep(0.002)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {stderr.strip()[-300:]}"
    for line in stdout.splitlines():
        if line.startswith("{"):
            res = json.loads(line)
            res["m"]["cpu_seconds"] = ru.ru_utime + ru.ru_stime
            return res, None
    return None, "no result line"


def callgrind(variants, pairs=(50000, 150000)):
    """Instructions per alloc+free pair of the fastpath workload (loop
    included): the difference of two runs of different lengths, so start-up
    and warm-up cancel. {variant: count}."""
    out = {}
    if not shutil.which("valgrind"):
        print("bench: callgrind skipped (valgrind not installed)")
        return out
    for v in variants:
        if v.get("callgrind") is False:
            continue
        counts = []
        for n in pairs:
            if sys.stderr.isatty():
                sys.stderr.write(f"\r\033[Kcallgrind {v['name']} {n} pairs")
            p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                v["exe"], "-w", "fastpath", "-s", f"{n / 20e6:g}"],
                               capture_output=True, text=True, timeout=300, env=run_env(v))
            m = re.search(r"Collected\s*:\s*(\d+)", p.stderr)
            if p.returncode != 0 or not m:
                print(f"bench: callgrind of {v['name']} failed: {p.stderr.strip()[-200:]}")
                counts = None
                break
            counts.append(int(m.group(1)))
        if counts:
            out[v["name"]] = (counts[1] - counts[0]) / float(pairs[1] - pairs[0])
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    return out


def main():
    out = os.path.join(ROOT, env("BUILD", "build"), "bench")
    quick = env("QUICK", "0") == "1"
    reps = int(env("REPS", "2" if quick else "3"))
    scale_mul = float(env("SCALE", "0.3" if quick else "1"))
    jobs = int(env("JOBS", str(min(2, os.cpu_count() or 1))))
    timeout = int(env("BENCH_TIMEOUT", "120"))

    with open(os.path.join(HERE, "workloads.json")) as f:
        all_workloads = json.load(f)["workloads"]
    names = env_list("WORKLOADS")
    known = [w["name"] for w in all_workloads]
    bad = [n for n in names if n not in known]
    if bad:
        sys.exit(f"bench: unknown workload(s) {' '.join(bad)}; known: {' '.join(known)}")
    workloads = [w for w in all_workloads if not names or w["name"] in names]

    vdoc = build.load()
    variants, skipped = build.select(vdoc, env_list("BACKENDS"), env_list("VARIANTS"))
    for s in skipped:
        print("bench: skipped", s)
    say = (lambda s: sys.stderr.write(f"\r\033[Kbench: {s}")) if sys.stderr.isatty() else \
        (lambda s: print(f"bench: {s}", flush=True))
    t_build = time.time()
    variants = build.build_variants(vdoc, variants, out, jobs, say)
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    print(f"bench: built in {time.time() - t_build:.0f}s; variants: " + " ".join(v["name"] for v in variants))
    if not variants:
        sys.exit("bench: nothing built")

    plan = [(w, t) for (w, t) in cases(workloads, [int(x) for x in env_list("THREADS")])
            if any(runs_case(v, w, t) for v in variants)]
    total = sum(1 for w, t in plan for v in variants if runs_case(v, w, t)) * reps
    prog = Progress(total)
    raw, libs, errors = {}, {}, []
    load0 = loadavg()
    t_start = time.time()
    load_seen = []
    for rep in range(reps):
        for w, t in plan:
            load_seen.append((loadavg() or [0])[0])
            vs = [v for v in variants if runs_case(v, w, t)]
            k = rep % len(vs)
            for v in vs[k:] + vs[:k]:
                prog.show(f"rep {rep + 1}/{reps}  {w['name']} t={t}  {v['name']}")
                res, err = run_one(v, w["name"], t, w["scale"] * scale_mul, timeout)
                prog.step()
                if err:
                    errors.append(f"{v['name']} {w['name']} t={t} rep {rep + 1}: {err}")
                    continue
                libs[v["name"]] = res.get("lib", "").replace(ROOT + os.sep, "")
                raw.setdefault((w["name"], t, v["name"]), []).append(res["m"])
    prog.end()
    for e in errors:
        print("bench: FAILED", e)

    rows = []
    for (w, t, vname), runs in raw.items():
        metrics = {}
        for m in runs[0]:
            vals = [r[m] for r in runs if m in r]
            metrics[m] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": vals}
        rows.append({"workload": w, "threads": t, "variant": vname, "metrics": metrics})
    cg = {}
    if not quick and env("CALLGRIND", "1") != "0":
        cg = callgrind(variants)
    for vname, n in cg.items():
        rows.append({"workload": "callgrind", "threads": 1, "variant": vname,
                     "metrics": {"instructions_per_pair": {"median": n, "min": n, "max": n, "runs": [n]}}})

    doc = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "command": "make bench" + (" QUICK=1" if quick else "") +
                       "".join(f" {k}={os.environ[k]}" for k in ("BACKENDS", "VARIANTS", "WORKLOADS", "THREADS",
                                                                 "REPS", "SCALE") if os.environ.get(k)),
            "quick": quick,
            "reps": reps,
            "scale": scale_mul,
            "seconds": round(time.time() - t_start, 1),
            "loadavg_start": load0,
            "loadavg_end": loadavg(),
            "loadavg_during": [min(load_seen), statistics.median(load_seen), max(load_seen)] if load_seen else None,
            "git": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                  text=True).stdout.strip(),
            "variants": [{k: v.get(k) for k in ("name", "mode", "backend", "build", "env", "only", "cost_of",
                                                "base_only", "what")} | {"lib": libs.get(v["name"], ""),
                                                            "preload": os.path.basename(v.get("preload") or "")}
                         for v in variants],
            "workloads": workloads,
            "skipped": skipped,
            "errors": errors,
        },
        "results": rows,
    }
    os.makedirs(out, exist_ok=True)
    results.save(doc, out)
    print(report.text_report(doc))
    md = report.write_docs(doc, os.path.join(ROOT, "docs", "benchmarks.md"), os.path.join(out, "benchmarks.md"),
                           os.path.join(out, "benchmarks"))
    print(f"bench: results in {out}/results.json and results.csv; report {md} "
          "(make bench-save copies the results into docs/benchmarks/ and regenerates docs/benchmarks.md)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
