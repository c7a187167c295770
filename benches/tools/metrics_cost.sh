#!/usr/bin/env bash
# The cost of the `metrics` feature with no recorder installed, on the
# checkout bench's hot path: the same bench built without and with the
# feature, run alternately (ROUNDS rounds, default 5) so that both see the
# same machine, and the median of each side's criterion estimates with
# their ratio. Usage: bash benches/tools/metrics_cost.sh [ROUNDS] [FILTER]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
filter=${2:-warm/1_key}
# `-p keepalive`: without it the workspace's other members (the command
# asks for the feature) unify it into both builds.
bin() {
    cargo bench -p keepalive --bench checkout --no-run --message-format=json "$@" 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="checkout" and m.get("executable"): print(m["executable"])' | tail -1
}
# Both builds write the same file: each is copied away before the next.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$(bin)" "$dir/without"
cp "$(bin --features metrics)" "$dir/with"
without=$dir/without
with=$dir/with
run() { "$1" --bench "$filter" --measurement-time 3 --warm-up-time 1 --noplot 2>/dev/null |
    awk '/time:/ { gsub(/\[|\]/, ""); print $5, $6; exit }'; }
to_ns() { awk '{ v=$1; u=$2; if (u=="ps") v/=1000; else if (u=="µs"||u=="us") v*=1000; else if (u=="ms") v*=1e6; print v }'; }
a=(); b=()
for i in $(seq "$rounds"); do
    a+=("$(run "$without" | to_ns)")
    b+=("$(run "$with" | to_ns)")
    echo "round $i: without ${a[-1]} ns, with ${b[-1]} ns"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR]=$1 } END { print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2) }'; }
ma=$(median "${a[@]}"); mb=$(median "${b[@]}")
echo "$filter: median without metrics ${ma} ns, with metrics (no recorder) ${mb} ns, ratio $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", b/a }')"
