#!/usr/bin/env python3
"""bench/build.py: the builds of `make bench`, made the way a user gets zmalloc.

Each build of bench/variants.json is configured (Release, no tests, no
benchmarks), built and installed with `cmake --install` under
build/bench/install/<build>; bench/zmbench.c is then compiled against that
installation with `pkg-config --cflags --libs zmalloc` (the shared library,
found at run time through an rpath) into build/bench/bin/zmbench-<build>.
One more copy, build/bench/bin/zmbench-malloc, is compiled with
-DZMB_MALLOC=1 and no zmalloc at all: the malloc variants run it under
LD_PRELOAD. No internal header, no link-time optimisation across the
library boundary: what is timed is what a program linking zmalloc gets.

Used by bench/run.py; standard library only.
"""
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# -falign-loops=32: every copy of zmbench gets its loops on the same
# boundaries. Without it a workload loop's placement, not the allocator,
# decided cache-scratch (measured 2026-12-04: the same 28-byte write loop
# across a 64-byte line boundary in zmbench-pool, inside one line in
# zmbench-malloc: 0.052 s against 0.030 s with the same pool underneath;
# aligned, 0.031 s), and "zm:pool" trailed "pool" by 1.7x on it.
CFLAGS = ["-O2", "-g", "-std=gnu11", "-Wall", "-Wextra", "-falign-loops=32"]
NO_BUILTIN = ["-fno-builtin-malloc", "-fno-builtin-free", "-fno-builtin-calloc", "-fno-builtin-realloc"]


def load(path=None):
    with open(path or os.path.join(ROOT, "bench", "variants.json")) as f:
        return json.load(f)


def available_backends():
    """The backends scripts/backends.sh can build on this machine."""
    p = subprocess.run(["bash", "-c", ". scripts/backends.sh; available_backends"], cwd=ROOT,
                       capture_output=True, text=True)
    return p.stdout.split()


def run_logged(cmd, log, env=None):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env).returncode == 0


def install(name, spec, out, jobs):
    """Configure, build and install one build; its prefix, or None with the
    log named on failure."""
    bdir = os.path.join(out, "cmake", name)
    prefix = os.path.join(out, "install", name)
    log = os.path.join(out, "logs", f"build-{name}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    open(log, "w").close()
    ok = (run_logged(["cmake", "-S", ".", "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", "-DZMALLOC_TESTS=OFF",
                      "-DZMALLOC_BENCH=OFF"] + spec["cmake"], log) and
          run_logged(["cmake", "--build", bdir, "-j", str(jobs)], log) and
          run_logged(["cmake", "--install", bdir, "--prefix", prefix], log))
    if not ok:
        print(f"bench: build {name} failed (log: {log})")
        return None
    return os.path.abspath(prefix)


def compile_api(name, prefix, out):
    """zmbench against an installed zmalloc, through pkg-config."""
    pcs = glob.glob(os.path.join(prefix, "**", "zmalloc.pc"), recursive=True)
    log = os.path.join(out, "logs", f"build-{name}.log")
    if not pcs:
        print(f"bench: {name}: no zmalloc.pc under {prefix}")
        return None
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "zmalloc"], env=env, capture_output=True, text=True)
    libdir = subprocess.run(["pkg-config", "--variable=libdir", "zmalloc"], env=env, capture_output=True,
                            text=True).stdout.strip()
    if pc.returncode != 0:
        print(f"bench: {name}: pkg-config failed: {pc.stderr.strip()}")
        return None
    exe = os.path.abspath(os.path.join(out, "bin", f"zmbench-{name}"))
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    cc = os.environ.get("CC") or "cc"
    cmd = [cc] + CFLAGS + ["bench/zmbench.c", "-o", exe] + pc.stdout.split() + \
        ["-lm", f"-Wl,-rpath,{os.path.realpath(libdir)}"]
    if not run_logged(cmd, log, env):
        print(f"bench: {name}: compiling zmbench failed (log: {log})")
        return None
    return exe


def compile_malloc(out):
    """zmbench on plain malloc, for LD_PRELOAD."""
    exe = os.path.abspath(os.path.join(out, "bin", "zmbench-malloc"))
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    log = os.path.join(out, "logs", "build-malloc.log")
    open(log, "w").close()
    cc = os.environ.get("CC") or "cc"
    if not run_logged([cc] + CFLAGS + NO_BUILTIN + ["-DZMB_MALLOC=1", "bench/zmbench.c", "-o", exe,
                                                   "-lm", "-pthread"], log):
        print(f"bench: compiling the malloc zmbench failed (log: {log})")
        return None
    return exe


def select(doc, backends=None, names=None):
    """The variants to run: those whose backend is available (and asked for
    with BACKENDS; libc is always kept, every figure has a glibc ratio)
    and whose required file exists. Returns (variants, skipped reasons)."""
    avail = set(available_backends())
    chosen, skipped = [], []
    for v in doc["variants"]:
        b = v.get("backend", "")
        if backends and b not in backends and b != "libc":
            continue
        if names and v["name"] not in names:
            continue
        if v["mode"] == "api" and doc["builds"][v["build"]]["backend"] not in avail:
            skipped.append(f"{v['name']}: backend {doc['builds'][v['build']]['backend']} not available here")
            continue
        if v.get("requires") and not os.path.exists(v["requires"]):
            skipped.append(f"{v['name']}: {v['requires']} not installed")
            continue
        chosen.append(dict(v))
    return chosen, skipped


def build_variants(doc, variants, out, jobs, say=print):
    """Builds what the variants need; fills in each variant's 'exe' and
    'preload' (resolved) and drops the variants whose build failed."""
    need = []
    for v in variants:
        if v["mode"] == "api":
            need.append(v["build"])
        for ref in _install_refs(v.get("preload") or ""):
            need.append(ref)
    prefixes, exes = {}, {}
    for b in dict.fromkeys(need):
        say(f"building {b}")
        prefixes[b] = install(b, doc["builds"][b], out, jobs)
        if prefixes[b]:
            exes[b] = compile_api(b, prefixes[b], out)
    malloc_exe = None
    if any(v["mode"] == "malloc" for v in variants):
        say("building the malloc zmbench")
        malloc_exe = compile_malloc(out)
    kept = []
    for v in variants:
        if v["mode"] == "api":
            v["exe"] = exes.get(v["build"])
        else:
            v["exe"] = malloc_exe
            pre = v.get("preload") or ""
            missing = [r for r in _install_refs(pre) if not prefixes.get(r)]
            if missing:
                v["exe"] = None
            else:
                for r in _install_refs(pre):
                    pre = pre.replace("{install:%s}" % r, prefixes[r])
                v["preload"] = pre
                if pre and not os.path.exists(pre):
                    print(f"bench: {v['name']}: {pre} was not built")
                    v["exe"] = None
        if v["exe"]:
            kept.append(v)
        else:
            print(f"bench: variant {v['name']} skipped (its build failed)")
    return kept


def _install_refs(s):
    out, i = [], 0
    while True:
        i = s.find("{install:", i)
        if i < 0:
            return out
        j = s.index("}", i)
        out.append(s[i + len("{install:"):j])
        i = j


if __name__ == "__main__":
    d = load()
    vs, sk = select(d)
    for s in sk:
        print("skipped", s)
    out = os.path.join(ROOT, "build", "bench")
    for v in build_variants(d, vs, out, int(os.environ.get("JOBS", "2"))):
        print(v["name"], v["exe"], v.get("preload", ""))
    sys.exit(0)
