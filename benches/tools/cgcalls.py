#!/usr/bin/env python3
"""Calls and inclusive instructions per call for functions matching a pattern, from a callgrind file."""
import re, sys, collections
path, pat = sys.argv[1], re.compile(sys.argv[2])
names = {}
calls = collections.Counter(); incl = collections.Counter()
cfn = None; pending = None
def name_of(tok):
    m = re.match(r'\((\d+)\)(?: (.*))?', tok)
    if m:
        if m.group(2): names[m.group(1)] = m.group(2)
        return names.get(m.group(1), '?')
    return tok
for line in open(path):
    line = line.rstrip('\n')
    if line.startswith('cfn='):
        cfn = name_of(line[4:])
    elif line.startswith('fn='):
        name_of(line[3:])
    elif line.startswith('calls='):
        pending = int(line[6:].split()[0])
    elif pending is not None and line and (line[0].isdigit() or line[0] in '+-*'):
        cost = int(line.split()[1]) if len(line.split()) > 1 else 0
        calls[cfn] += pending; incl[cfn] += cost; pending = None
for n in sorted(calls, key=lambda n: -incl[n]):
    if pat.search(n):
        print(f'{calls[n]:>9} calls {incl[n]/calls[n]:>10.0f} instr/call  {n[:110]}')
