"""bench/charts.py: the charts of the benchmark report, drawn by gnuplot.

From a results file (bench/results.py) it writes gnuplot data files into a
scratch directory and draws with bench/plot.gp into the chart directory:
  speed.svg   each workload run both ways: glibc's time over each
              allocator's (higher is better), plain malloc and zmalloc-pool
  memory.svg  the same workloads' peak RSS relative to glibc (lower is better)
  churn.svg   small-object churn ops/s by thread count
Returns [(file name, alt text)] of the charts drawn.
"""
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = ["pool", "zm:pool", "glibc", "jemalloc", "tcmalloc", "mimalloc"]


def _series(res, metric, invert):
    cols = [c for c in COLUMNS if c in res.variants()]
    lines = []
    for w, t in res.cases("both-modes"):
        m = res.time_metric(w) if metric == "time" else metric
        base = res.get(w, t, "glibc", m)
        if not base:
            continue
        vals = []
        for c in cols:
            v = res.get(w, t, c, m)
            vals.append(f"{(base / v if invert else v / base):.4f}" if v else "NaN")
        lab = w + (f" t={t}" if len(res.threads(w)) > 1 else "")
        lines.append(f'"{lab}" ' + " ".join(vals))
    return cols, lines


def draw(res, chart_dir):
    if not shutil.which("gnuplot"):
        print("bench: charts skipped (gnuplot not installed; scripts/deps.sh installs gnuplot-nox)")
        return []
    tmp = tempfile.mkdtemp(prefix="zm-charts-")
    made = []
    for name, metric, invert, alt in (("speed", "time", True, "speed relative to glibc"),
                                      ("memory", "peak_rss", False, "peak RSS relative to glibc")):
        cols, lines = _series(res, metric, invert)
        if lines:
            with open(os.path.join(tmp, f"{name}.dat"), "w") as f:
                f.write("workload " + " ".join(f'"{c}"' for c in cols) + "\n" + "\n".join(lines) + "\n")
            made.append((f"{name}.svg", alt, len(cols)))
    ts = res.threads("churn")
    cols = [c for c in COLUMNS if c in res.variants()]
    if ts and cols:
        with open(os.path.join(tmp, "churn.dat"), "w") as f:
            f.write("threads " + " ".join(f'"{c}"' for c in cols) + "\n")
            for t in ts:
                f.write(f"{t} " + " ".join(f"{(res.get('churn', t, c, 'ops_per_s') or 0) / 1e6:.3f}"
                                           for c in cols) + "\n")
        made.append(("churn.svg", "churn ops/s by threads", len(cols)))
    m = res.meta
    title = f"{m['cpu']}, {m['cores']} cores, {m['date']}".replace("'", "")
    os.makedirs(chart_dir, exist_ok=True)
    drawn = []
    for fname, alt, nb in made:
        p = subprocess.run(["gnuplot", "-e", f"dir='{tmp}'; out='{chart_dir}'; chart='{fname[:-4]}'; nb={nb}; "
                            f"subtitle='{title}'", os.path.join(HERE, "plot.gp")], capture_output=True, text=True)
        if p.returncode != 0:
            print("bench: gnuplot failed:", p.stderr.strip()[-400:])
            continue
        drawn.append((fname, alt))
    shutil.rmtree(tmp, ignore_errors=True)
    return drawn
