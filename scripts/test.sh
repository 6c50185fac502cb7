#!/usr/bin/env bash
# Sets up the machine and runs dpm's whole test suite: unit tests, and integration tests
# that drive the built `dpm` binary and plugins against real tools.
# With CI=true a test whose tool is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
swift build --build-tests
swift test --skip-build "$@"
