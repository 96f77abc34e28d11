#!/usr/bin/env python3
"""Compares two feature CSVs (bench/nad.sh): same header, same (vm, window_start) rows, every
feature equal to 1e-9 relative. Exit 1 with the first difference otherwise."""
import sys

a, b = (open(p).read().split("\n") for p in sys.argv[1:3])
key = lambda rows: sorted((r.split(",") for r in rows[1:] if r), key=lambda f: (f[0], float(f[1])))
ra, rb = key(a), key(b)
if a[0] != b[0]:
    sys.exit(f"headers differ:\n{a[0]}\n{b[0]}")
if len(ra) != len(rb):
    sys.exit(f"{len(ra)} rows vs {len(rb)}")
for x, y in zip(ra, rb):
    if x[0] != y[0] or float(x[1]) != float(y[1]) or any(
            abs(float(u) - float(v)) > 1e-9 * max(1.0, abs(float(v))) for u, v in zip(x[2:], y[2:])):
        sys.exit(f"rows differ:\n{','.join(x)}\n{','.join(y)}")
print(f"{len(ra)} rows identical (floats to 1e-9)")
