# Sourced by the scripts: checks the Debian packages the project needs and
# installs the missing ones when running as root; otherwise prints the exact
# command and exits 2.

# Package groups: build (compile and link), test (run the suite), fuzz (libFuzzer),
# strace (scripts/bench.sh --strace).
# libyaml-dev is listed because libcyaml.pc links -lyaml but Debian's
# libcyaml-dev does not depend on it.
deps_for() {
    case "$1" in
    build) echo "build-essential cmake pkg-config libevent-dev libcyaml-dev libyaml-dev libinih-dev libcmocka-dev python3" ;;
    test) echo "valgrind clang clang-tidy cppcheck clang-format libclang-rt-14-dev" ;;
    fuzz) echo "clang libclang-rt-14-dev" ;;
    strace) echo "strace" ;;
    *) return 1 ;;
    esac
}

ensure_deps() {
    local missing=() group pkg
    for group in "$@"; do
        for pkg in $(deps_for "$group"); do
            if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
                missing+=("$pkg")
            fi
        done
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "missing packages: ${missing[*]}" >&2
        echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 2
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
