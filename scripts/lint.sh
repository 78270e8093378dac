#!/usr/bin/env bash
# Static checks over the project's C code: clang-format (no diff allowed),
# clang-tidy (with build/compile_commands.json) and cppcheck. Exit 1 on any
# finding. Usage: scripts/lint.sh [build-dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/compile_commands.json" ] || {
    echo "lint: $build/compile_commands.json missing: configure with cmake first" >&2
    exit 2
}

mapfile -t sources < <(git ls-files '*.c' '*.h' | grep -v '^test/fuzz/corpus')
mapfile -t units < <(git ls-files 'src/*.c' 'client/*.c')
# The lists come from git: outside a checkout they are empty, and clang-format
# with no file would wait on stdin.
if [ ${#sources[@]} -eq 0 ] || [ ${#units[@]} -eq 0 ]; then
    echo "lint: git ls-files listed no sources (not a git checkout?)" >&2
    exit 2
fi
status=0

echo "lint: clang-format (${#sources[@]} files)"
if ! clang-format --dry-run --Werror "${sources[@]}"; then
    echo "lint: clang-format found differences (run: clang-format -i <files>)" >&2
    status=1
fi

echo "lint: clang-tidy (${#units[@]} translation units)"
if ! clang-tidy -p "$build" --quiet "${units[@]}" 2>/dev/null; then
    echo "lint: clang-tidy found problems" >&2
    status=1
fi

echo "lint: cppcheck"
if ! cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
    --inline-suppr --suppress=missingIncludeSystem -I include -I src -I client \
    "${units[@]}"; then
    echo "lint: cppcheck found problems" >&2
    status=1
fi
exit $status
