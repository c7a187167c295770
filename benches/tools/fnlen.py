#!/usr/bin/env python3
"""Lists functions longer than N lines in the library packages' src (tests excluded)."""
import re, sys, os
N = int(sys.argv[1]) if len(sys.argv) > 1 else 40
roots = sys.argv[2:] or ['src', 'http/src', 'hyper/src', 'relay/src']
fnre = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)')
out = []
for root in roots:
    for d, _, fs in os.walk(root):
        for f in fs:
            if not f.endswith('.rs') or f == 'tests.rs':
                continue
            p = os.path.join(d, f)
            lines = open(p).read().split('\n')
            # cut test modules
            end = len(lines)
            for i, l in enumerate(lines):
                if l.strip() == '#[cfg(test)]' and i + 1 < len(lines) and lines[i+1].lstrip().startswith('mod '):
                    end = i
                    break
            i = 0
            while i < end:
                m = fnre.match(lines[i])
                if not m or lines[i].lstrip().startswith('//'):
                    i += 1; continue
                depth = 0; started = False; j = i
                while j < end:
                    s = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j])
                    s = re.sub(r"'(\\.|[^'\\])'", "''", s)
                    s = s.split('//')[0]
                    for ch in s:
                        if ch == '{': depth += 1; started = True
                        elif ch == '}': depth -= 1
                    if not started and s.rstrip().endswith(';'):
                        break
                    if started and depth == 0:
                        break
                    j += 1
                n = j - i + 1
                if started and n > N:
                    out.append((n, p, i + 1, m.group(6)))
                i += 1
for n, p, l, name in sorted(out, reverse=True):
    print(f'{n:4} {p}:{l} {name}')
print(len(out), 'functions past', N)
