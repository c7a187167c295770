#!/usr/bin/env bash
# Runs each fuzz target for a bounded time: `bash fuzz/run.sh [SECONDS]`
# (default 60 per target). Needs cargo-fuzz (`cargo install cargo-fuzz`);
# the machine's stable toolchain is allowed nightly flags for this build
# only (RUSTC_BOOTSTRAP=1), since no nightly toolchain can be fetched here.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
for target in target_from_str http_response; do
    echo "== $target for ${seconds}s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
        | grep -E "^(#[0-9]+.*DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
    if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
        echo "!! $target found crashes: fuzz/artifacts/$target/"
        exit 1
    fi
done
