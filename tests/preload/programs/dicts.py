# dicts.py [scale]: dict- and string-heavy work with a deterministic output.
# Used by tests/preload/run.sh (output compared with and without the preload
# library) and bench/preload/bench.sh (timed).
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
n = int(200000 * scale)

words = {}
for i in range(n):
    k = "key:%d:%s" % (i, "x" * (i % 37))
    words[k] = str(i * 7) + "-" + k[::-1]
checksum = 0
for i in range(0, n, 3):
    del words["key:%d:%s" % (i, "x" * (i % 37))]
for k, v in words.items():
    checksum = (checksum * 31 + len(k) + len(v)) % 1000000007
print("dict", len(words), checksum)

# String building, splitting and joining.
parts = []
for i in range(n // 2):
    parts.append(("%08x" % (i * 2654435761 % 2**32)) * (1 + i % 5))
text = ",".join(parts)
pieces = text.split(",")
print("strings", len(text), len(pieces), sum(len(p) for p in pieces) % 1000003)

# Nested containers that grow and shrink.
groups = {}
for i in range(n):
    groups.setdefault(i % 1000, []).append((i, str(i)))
for g in list(groups):
    if g % 2:
        del groups[g]
    else:
        groups[g] = sorted(groups[g], key=lambda t: t[1])[: len(groups[g]) // 2]
print("groups", len(groups), sum(len(v) for v in groups.values()))

# Sets and a word count.
counts = {}
for i in range(n):
    w = "w%d" % (i * i % 5003)
    counts[w] = counts.get(w, 0) + 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
print("top", top)
s = set(range(0, n, 2)) ^ set(range(0, n, 3))
print("set", len(s))
