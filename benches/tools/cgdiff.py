#!/usr/bin/env python3
"""Per-request self instructions of each function, before against after.

Usage: cgdiff.py before.cg:REQUESTS[,more.cg:REQUESTS] after.cg:REQUESTS[,...]

Each side is one or more callgrind output files with the number of
requests each served (the calls of Manager::allocate: `cgcalls.py FILE
'Manager<P,T>::allocate$'`); the biggest differences come first.
"""
import collections, re, subprocess, sys

def load(spec):
    acc = collections.Counter()
    runs = spec.split(',')
    for run in runs:
        path, requests = run.rsplit(':', 1)
        out = subprocess.run(['callgrind_annotate', '--threshold=100', path], capture_output=True, text=True).stdout
        for line in out.split('\n'):
            m = re.match(r'\s*([\d,]+) \([^)]*\)\s+(.*?)( \[.*\])?$', line)
            if m and 'PROGRAM TOTALS' not in line:
                acc[m.group(2)] += int(m.group(1).replace(',', '')) / int(requests)
    return {k: v / len(runs) for k, v in acc.items()}

before, after = load(sys.argv[1]), load(sys.argv[2])
rows = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in set(before) | set(after)), key=lambda r: -abs(r[0]))
for delta, name in rows[:30]:
    print(f'{delta:+8.1f}  {before.get(name, 0):8.1f} -> {after.get(name, 0):8.1f}  {name[:110]}')
