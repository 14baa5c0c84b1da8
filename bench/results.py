"""bench/results.py: the results file of `make bench` and access to it.

results.json holds "meta" (date, CPU, load, the variants and workloads of
the run) and "results": one row per (workload, threads, variant) with, per
metric, the median, min, max and every run. results.csv is the same, one
line per metric, for a spreadsheet or another plotting tool. Both are
written by bench/run.py into build/bench/ and, by `make bench-save`, copied
into docs/benchmarks/, from which `make bench-docs` redraws the docs.
"""
import csv
import json
import math
import os


def save(doc, out):
    # The metadata pretty-printed, then one result row per line: small,
    # and a new run's diff reads row by row.
    with open(os.path.join(out, "results.json"), "w") as f:
        f.write('{"meta": ' + json.dumps(doc["meta"], indent=1) + ',\n "results": [\n')
        f.write(",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in doc["results"]))
        f.write("\n ]\n}\n")
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "threads", "variant", "metric", "median", "min", "max", "runs"])
        for r in sorted(doc["results"], key=lambda r: (r["workload"], r["threads"], r["variant"])):
            for m, v in sorted(r["metrics"].items()):
                wr.writerow([r["workload"], r["threads"], r["variant"], m, v["median"], v["min"], v["max"],
                             " ".join(f"{x:.6g}" for x in v["runs"])])


def load(path):
    with open(path) as f:
        return Results(json.load(f))


class Results:
    """Read access: medians by (workload, threads, variant, metric)."""

    def __init__(self, doc):
        self.doc = doc
        self.meta = doc["meta"]
        self._ix = {(r["workload"], r["threads"], r["variant"]): r["metrics"] for r in doc["results"]}

    def get(self, w, t, v, m):
        x = self._ix.get((w, t, v), {}).get(m)
        return x["median"] if x else None

    def spread(self, w, t, v, m):
        x = self._ix.get((w, t, v), {}).get(m)
        return (x["min"], x["max"]) if x else None

    def variants(self, mode=None):
        """Names of the variants that produced results, in variants.json order."""
        have = {r["variant"] for r in self.doc["results"]}
        return [v["name"] for v in self.meta["variants"]
                if v["name"] in have and (mode is None or v["mode"] == mode)]

    def variant(self, name):
        return next((v for v in self.meta["variants"] if v["name"] == name), None)

    def column_variants(self):
        """The variants shown as columns: all but cost rows and their bases-only."""
        return [v for v in self.variants()
                if not self.variant(v).get("cost_of") and not self.variant(v).get("base_only")]

    def workloads(self):
        have = {r["workload"] for r in self.doc["results"]}
        return [w for w in self.meta["workloads"] if w["name"] in have]

    def workload(self, name):
        return next((w for w in self.meta["workloads"] if w["name"] == name), None)

    def threads(self, w):
        return sorted({r["threads"] for r in self.doc["results"] if r["workload"] == w})

    def cases(self, selector="all"):
        """(workload, threads) pairs: 'all', 'classic' (issue 10's shapes) or
        'both-modes' (every workload run through the API and plain malloc)."""
        out = []
        for w in self.workloads():
            if selector == "classic" and not w.get("classic"):
                continue
            if selector == "both-modes" and set(w["modes"]) != {"api", "malloc"}:
                continue
            out += [(w["name"], t) for t in self.threads(w["name"])]
        return out

    def time_metric(self, w):
        spec = self.workload(w)
        return spec["time"] if spec else None


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None
