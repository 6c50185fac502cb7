#!/usr/bin/env bash
# Builds dpm in release mode, installs the peers (restic, SeaweedFS, the AWS CLI) and runs
# benchmarks/tiers.py (tape and online tiers against tar, restic and aws s3 cp).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests --bench
swift build -c release >/dev/null
exec python3 benchmarks/tiers.py "$@"
