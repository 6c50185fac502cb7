#!/usr/bin/env bash
# Builds dpm in release mode, installs the peers (restic, borg) and runs benchmarks/run.py.
# Arguments pass through, e.g. benchmarks/run.sh --size-gib 2 --runs 3
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bench
swift build -c release --product dpm >/dev/null
swift build -c release --product HyperVHost >/dev/null
exec python3 benchmarks/run.py "$@"
