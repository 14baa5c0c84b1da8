#!/usr/bin/env python3
"""bench/preload/bench.py: real programs timed under each allocator by LD_PRELOAD.

Called by bench/preload/bench.sh, which builds the preload library. Every
program of tests/preload/programs runs under glibc (no preload), Debian's
jemalloc and mimalloc (LD_PRELOAD of libjemalloc.so.2 / libmimalloc.so.2) and
zmalloc (libzmalloc-preload.so), interleaved: each repetition runs every
allocator once, in a rotated order, so drift on a shared machine spreads
over all of them. Reported per program and allocator: the median wall time,
the median CPU time (user + system of the whole process tree) and the median
peak RSS (largest process), plus ratios to glibc and mimalloc. Issue 6's
targets: zmalloc never slower than glibc, and within 5% of mimalloc.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
P = os.path.join(ROOT, "tests", "preload", "programs")
PY = "/usr/bin/python3"


def programs(quick, work):
    """name -> (argv, setup) with sizes that take about a second on glibc."""
    s = 0.5 if quick else 1.0
    rows = int(300000 * s)
    sql = os.path.join(work, "workload.sql")
    with open(os.path.join(P, "workload.sql")) as f, open(sql, "w") as g:
        g.write(f.read().replace("ROWS", str(rows)))
    cxx = os.path.join(work, "churn")
    out = {}
    if os.path.exists(PY):
        out["python3 dicts"] = [PY, os.path.join(P, "dicts.py"), str(2 * s)]
    if shutil.which("sqlite3"):
        out["sqlite3 %dk rows" % (rows // 1000)] = [
            "sh", "-c", "rm -f \"$RUNDIR/db\"; sqlite3 \"$RUNDIR/db\" <'%s' >/dev/null" % sql]
    if shutil.which("perl"):
        out["perl words"] = ["perl", os.path.join(P, "words.pl"), str(2 * s)]
    if shutil.which("tclsh"):
        out["tclsh lists"] = ["tclsh", os.path.join(P, "lists.tcl"), str(2 * s)]
    if shutil.which("gcc"):
        out["gcc -O2"] = ["bash", os.path.join(P, "gcc.sh"), "$RUNDIR/c", str(s)]
    if shutil.which("git"):
        out["git commit+gc+fsck"] = ["bash", os.path.join(P, "gitrepo.sh"), "$RUNDIR/g", str(s)]
    if shutil.which("g++") and subprocess.call(
            ["g++", "-O2", "-o", cxx, os.path.join(P, "churn.cc")]) == 0:
        out["c++ containers"] = [cxx, str(3 * s)]
    return out


def run_once(argv, env, rundir):
    argv = [a.replace("$RUNDIR", rundir) for a in argv]
    env = dict(env, RUNDIR=rundir)
    t0 = time.perf_counter()
    with open(os.path.join(rundir, ".stdout"), "wb") as out, \
            open(os.path.join(rundir, ".stderr"), "wb") as errf:
        proc = subprocess.Popen(argv, env=env, cwd=rundir, stdout=out, stderr=errf)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    with open(os.path.join(rundir, ".stdout"), "rb") as o, open(os.path.join(rundir, ".stderr"), "rb") as e:
        err = (o.read()[-200:] + e.read()[-300:]).decode(errors="replace")
    # The tree's CPU: the child's rusage covers its waited-for descendants.
    cpu = ru.ru_utime + ru.ru_stime
    code = os.waitstatus_to_exitcode(status)
    return wall, cpu, ru.ru_maxrss * 1024, code, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True, help="libzmalloc-preload.so")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated program name prefixes")
    a = ap.parse_args()
    reps = a.reps or (3 if a.quick else 5)

    allocs = [("glibc", None)]
    for name, path in (("jemalloc", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
                       ("mimalloc", "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2")):
        if os.path.exists(path):
            allocs.append((name, path))
        else:
            print("bench-preload: %s not installed (%s), skipped" % (name, path))
    allocs.append(("zmalloc", os.path.realpath(a.lib)))

    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="zm-preload-bench-")
    progs = programs(a.quick, work)
    if a.only:
        progs = {k: v for k, v in progs.items() if any(k.startswith(o) for o in a.only.split(","))}
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("LD_PRELOAD", "ZMALLOC_STATS", "ZMALLOC_STATS_FILE")}
    base_env["PYTHONHASHSEED"] = "0"
    base_env["LC_ALL"] = "C"

    results = {}
    failures = []
    for pname, argv in progs.items():
        runs = {n: [] for n, _ in allocs}
        # One warm-up run under glibc (page cache, pyc files).
        rd = os.path.join(work, "warm")
        os.makedirs(rd, exist_ok=True)
        run_once(argv, base_env, rd)
        for r in range(reps):
            order = allocs[r % len(allocs):] + allocs[:r % len(allocs)]
            for n, lib in order:
                env = dict(base_env)
                if lib:
                    env["LD_PRELOAD"] = lib
                rd = os.path.join(work, "%s-%d" % (n, r))
                shutil.rmtree(rd, ignore_errors=True)
                os.makedirs(rd)
                wall, cpu, rss, code, err = run_once(argv, env, rd)
                shutil.rmtree(rd, ignore_errors=True)
                if code != 0:
                    failures.append((pname, n, "exit %d: %s" % (code, " ".join(err.split()))))
                runs[n].append((wall, cpu, rss))
        res = {}
        for n, _ in allocs:
            w = [x[0] for x in runs[n]]
            c = [x[1] for x in runs[n]]
            m = [x[2] for x in runs[n]]
            res[n] = {"wall_median": statistics.median(w), "wall": w,
                      "cpu_median": statistics.median(c), "cpu": c,
                      "maxrss_median": int(statistics.median(m))}
        g, z = res["glibc"], res["zmalloc"]
        res["ratios"] = {"zmalloc/glibc wall": z["wall_median"] / g["wall_median"],
                         "zmalloc/glibc cpu": z["cpu_median"] / g["cpu_median"]}
        if "mimalloc" in res:
            mi = res["mimalloc"]
            res["ratios"]["zmalloc/mimalloc wall"] = z["wall_median"] / mi["wall_median"]
            res["ratios"]["zmalloc/mimalloc cpu"] = z["cpu_median"] / mi["cpu_median"]
        results[pname] = res
        print("bench-preload: %-22s %s" % (pname, "  ".join(
            "%s %.3fs" % (n, res[n]["wall_median"]) for n, _ in allocs)), flush=True)
    shutil.rmtree(work, ignore_errors=True)

    names = [n for n, _ in allocs]
    doc = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": "%s, %d cores, %s" % (platform.processor() or platform.machine(),
                                         os.cpu_count(), platform.platform()),
        "reps": reps, "quick": a.quick, "allocators": {n: l for n, l in allocs},
        "programs": results,
        "failures": [{"program": p_, "allocator": n_, "what": w_} for p_, n_, w_ in failures],
    }
    with open(os.path.join(a.out, "preload.json"), "w") as f:
        json.dump(doc, f, indent=1)

    md = ["# Real programs under LD_PRELOAD", "",
          "%s; %s; median of %d runs, interleaved%s. Wall time in seconds (CPU "
          "user+system of the process tree in parentheses), peak RSS of the largest "
          "process. Ratios are given on the median CPU time and (after the slash) on "
          "the median wall time; the verdict uses CPU time, which other load on a "
          "shared machine disturbs far less than wall time. Targets (issue 6): "
          "zmalloc/glibc <= 1.00, zmalloc/mimalloc <= 1.05; a ratio within 2%% of "
          "the glibc target is reported as a tie." % (
              doc["date"], doc["machine"], reps, ", QUICK=1" if a.quick else ""), "",
          "| program | " + " | ".join(names) + " | zm/glibc cpu / wall | zm/mimalloc cpu / wall | target |",
          "|---|" + "---|" * len(names) + "---|---|---|"]
    for pname, res in results.items():
        r = res["ratios"]
        zg, zgw = r["zmalloc/glibc cpu"], r["zmalloc/glibc wall"]
        zm, zmw = r.get("zmalloc/mimalloc cpu"), r.get("zmalloc/mimalloc wall")
        met = zg <= 1.0 and (zm is None or zm <= 1.05)
        tie = not met and zg <= 1.02 and (zm is None or zm <= 1.05)
        res["target"] = "met" if met else "tie" if tie else "missed"
        md.append("| %s | %s | %.3f / %.3f | %s | %s |" % (
            pname, " | ".join("%.3f (%.2f)" % (res[n]["wall_median"], res[n]["cpu_median"])
                              for n in names),
            zg, zgw, "%.3f / %.3f" % (zm, zmw) if zm else "-",
            "met" if met else "tie (within 2%)" if tie else "**missed**"))
    md += ["", "| program | " + " | ".join("%s peak RSS" % n for n in names) + " |",
           "|---|" + "---|" * len(names)]
    for pname, res in results.items():
        md.append("| %s | %s |" % (pname, " | ".join(
            "%.1f MiB" % (res[n]["maxrss_median"] / 1048576) for n in names)))
    if failures:
        md += ["", "Runs that failed (counted in the medians all the same):", ""]
        seen = {}
        for pname, n, what in failures:
            seen.setdefault((pname, n), [0, what])[0] += 1
        for (pname, n), (count, what) in seen.items():
            md.append("- %s under %s, %d of %d runs: %s" % (pname, n, count, reps, what[:300]))
    with open(os.path.join(a.out, "preload.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    # Another allocator failing a program is a finding, not a failure of
    # this benchmark; glibc or zmalloc failing is.
    return 1 if any(n in ("glibc", "zmalloc") for _, n, _ in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
