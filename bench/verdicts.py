"""bench/verdicts.py: check bench/targets.json against a results file.

Numbers in, verdicts out; no formatting (bench/report.py does that). Each
target gives one verdict per subject variant present in the results:

    {"target": <the target's entry>, "subject": name, "cases": [case...],
     "value": the worst ratio (aggregate 'each') or the geomean,
     "worst": the case of the worst ratio, "verdict": "PASS" | "FAIL" |
     "aim met" | "aim missed" | "n/a", "why": reason when n/a}

where each case is {"workload", "threads", "value", "ref_value", "ref",
"ratio"} (ratio is the value itself when the target has no reference).
"""
import json
import operator
import os

from results import geomean

OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
HERE = os.path.dirname(os.path.abspath(__file__))


def load_targets(path=None):
    with open(path or os.path.join(HERE, "targets.json")) as f:
        return json.load(f)["targets"]


def _cases(res, sel):
    if isinstance(sel, str):
        return res.cases(sel)
    out = []
    for c in sel:
        w, _, t = c.partition(":")
        ts = [int(t)] if t else res.threads(w)
        out += [(w, x) for x in ts if x in res.threads(w)]
    return out


def _reference(res, tgt, subject, w, t, metric):
    """(reference value, the variant or metric it came from) for one case."""
    ref = tgt.get("ref")
    if ref is None:
        return None, None
    if isinstance(ref, str):
        return res.get(w, t, ref, metric), ref
    if "metric" in ref:
        return res.get(w, t, subject, ref["metric"]), ref["metric"]
    if "cost_of" in ref:
        base = (res.variant(subject) or {}).get("cost_of")
        return (res.get(w, t, base, metric), base) if base else (None, None)
    pool = ref.get("best_of") or ref.get("lowest_of")
    vals = [(res.get(w, t, v, metric), v) for v in pool]
    vals = [x for x in vals if x[0] is not None]
    return min(vals) if vals else (None, None)  # every compared metric is lower-is-better


def check(res, targets):
    out = []
    for tgt in targets:
        for subject in tgt["subjects"]:
            if subject not in res.variants():
                continue
            cs = []
            for w, t in _cases(res, tgt["cases"]):
                metric = res.time_metric(w) if tgt["metric"] == "time" else tgt["metric"]
                v = res.get(w, t, subject, metric)
                if v is None:
                    continue
                rv, rname = _reference(res, tgt, subject, w, t, metric)
                if tgt.get("ref") is not None and not rv:
                    continue
                cs.append({"workload": w, "threads": t, "metric": metric, "value": v, "ref_value": rv,
                           "ref": rname, "ratio": v / rv if rv else v})
            row = {"target": tgt, "subject": subject, "cases": cs, "value": None, "worst": None}
            if not cs:
                row.update(verdict="n/a", why="not measured in this run")
                out.append(row)
                continue
            if tgt["aggregate"] == "geomean":
                row["value"] = geomean([c["ratio"] for c in cs])
            else:
                row["worst"] = max(cs, key=lambda c: c["ratio"] if tgt["op"] in ("<=", "<") else -c["ratio"])
                row["value"] = row["worst"]["ratio"]
            ok = OPS[tgt["op"]](row["value"], tgt["threshold"])
            if tgt.get("kind") == "aim":
                row["verdict"] = "aim met" if ok else "aim missed"
            else:
                row["verdict"] = "PASS" if ok else "FAIL"
            out.append(row)
    return out


def losses(verdicts, ids=("speed-best-peer", "speed-glibc", "rss-lowest")):
    """Every case where a subject misses a per-case target: the plain list
    the report shows first."""
    out = []
    for row in verdicts:
        t = row["target"]
        if t["id"] not in ids or t["aggregate"] != "each":
            continue
        for c in row["cases"]:
            if not OPS[t["op"]](c["ratio"], t["threshold"]):
                out.append({"subject": row["subject"], "target": t, **c})
    return out
