#!/usr/bin/env bash
# Long fuzzing campaign for the disk-format readers (HyperVHost/Formats).
#
# Runs FuzzTests.testMutatedImagesNeverCrash repeatedly with different random seeds and a large
# mutation count. A crash (the test process dying) leaves the mutated input in place; this
# script copies it to $CRASH_DIR with the seed and mutation number, so it can become a named
# regression test (see Tests/HyperVHostTests/FuzzRegressionTests.swift).
#
# Usage: scripts/fuzz-disk-formats.sh [rounds] [mutations-per-round]
#   environment: FIRST_SEED (default 1), CRASH_DIR (default ./fuzz-crashes)
set -u
cd "$(dirname "$0")/.."
rounds=${1:-20}
mutations=${2:-50000}
first=${FIRST_SEED:-1}
crash_dir=${CRASH_DIR:-$PWD/fuzz-crashes}
scratch=.build-formats
swift build --build-tests --scratch-path "$scratch" >/dev/null || exit 1
trace=$(mktemp)
failures=0
for ((round = 0; round < rounds; round++)); do
    seed=$((first + round))
    log=$(mktemp)
    DPM_FUZZ_SEED=$seed DPM_FUZZ_MUTATIONS=$mutations DPM_FUZZ_SECONDS=100000 DPM_FUZZ_TRACE=$trace \
        swift test --skip-build --scratch-path "$scratch" --filter 'HyperVHostTests.FuzzTests' >"$log" 2>&1
    status=$?
    summary=$(grep -o 'fuzz: .*' "$log" | head -1)
    if [ $status -ne 0 ]; then
        failures=$((failures + 1))
        mkdir -p "$crash_dir"
        input=$(sed -n 1p "$trace")
        what=$(sed -n 2p "$trace" | tr ' ' '-')
        target="$crash_dir/seed$seed-$what-$(basename "$input")"
        [ -f "$input" ] && cp "$input" "$target"
        echo "seed $seed: FAILED (status $status); input kept as $target"
        grep -E 'error|Fatal|fault|signal' "$log" | head -5
    else
        echo "seed $seed: ok — $summary"
    fi
    rm -f "$log"
done
rm -f "$trace"
echo "$rounds rounds, $failures failed"
[ $failures -eq 0 ]
