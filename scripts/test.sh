#!/usr/bin/env bash
# The project's test command (README): installs missing build dependencies when
# run as root, then builds and runs the whole suite twice: a normal build
# (warnings as errors; unit, integration, valgrind and e2e tests) and an
# ASan+UBSan build (everything but e2e, which runs the Docker images).
#
# Usage: scripts/test.sh [--quick]
#   --quick   only the normal build's unit and integration tests
# Environment:
#   TP0_REQUIRE_E2E=1   a skipped e2e test (no Docker) fails the run (CI sets it)
#   JOBS=N              build parallelism (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
for arg in "$@"; do
    case "$arg" in
    --quick) quick=1 ;;
    -h | --help)
        sed -n '2,13p' "$0"
        exit 0
        ;;
    *)
        echo "usage: scripts/test.sh [--quick]" >&2
        exit 2
        ;;
    esac
done

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
ensure_deps build test

jobs=${JOBS:-$(nproc)}
step() { printf '\n==> %s\n' "$*"; }

step "normal build (build/)"
cmake -S . -B build -DTP0_WERROR=ON -DTP0_SANITIZE=OFF >/dev/null
cmake --build build -j "$jobs"

if [ "$quick" = 1 ]; then
    step "unit and integration tests"
    ctest --test-dir build --output-on-failure -L 'unit|integration' -LE 'valgrind|e2e'
    exit 0
fi

step "static analysis"
scripts/lint.sh

step "tests: unit, integration, fuzz corpora, valgrind, e2e"
ctest --test-dir build --output-on-failure --timeout 900

step "sanitizer build (build-asan/): ASan + UBSan"
cmake -S . -B build-asan -DTP0_WERROR=ON -DTP0_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j "$jobs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
step "tests under ASan + UBSan (all but e2e and valgrind)"
ctest --test-dir build-asan --output-on-failure -LE 'e2e|valgrind' --timeout 900

step "all tests passed"
