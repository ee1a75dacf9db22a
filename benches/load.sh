#!/usr/bin/env bash
# Load test of the tool server (not part of the test suite).
#
# Starts `billable serve` (release build) over the demo mailbox with the per-user rate
# limit off (BILLABLE_USER_RPS=0), scans once, then measures in the same run, one after
# the other, with wrk at $CONNECTIONS connections for $DURATION each:
#   1. GET /healthz                                  (no I/O: the server's ceiling)
#   2. POST /v1/tools/get_time_tracking_summary      (authenticated, cached summary)
#   3. POST /v1/tools/call with that summary call    (the OpenAI tool-call envelope)
# and prints requests/s, p50 and p99 latency and each route's throughput relative to
# /healthz. The product's goal: the summary call reaches at least half of
# /healthz's throughput with p99 under 10 ms at 64 connections.
#
# Usage: benches/load.sh   (env: CONNECTIONS=64 DURATION=10s THREADS=2 PORT=18787 BILLABLE_BIN=)
# The release build goes to the project's own target directory, as cargo reports it
# (CARGO_TARGET_DIR or the build.target-dir setting when set, else target/).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
PORT="${PORT:-18787}"
TOKEN="load-test-token"
TARGET="$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' || true)"
TARGET="${TARGET:-${CARGO_TARGET_DIR:-target}}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package) ..." >&2
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq wrk >/dev/null
fi

# BILLABLE_BIN=path skips the build and measures that binary.
if [[ -n "${BILLABLE_BIN:-}" ]]; then
  BIN="$BILLABLE_BIN"
else
  cargo build --release --locked --bin billable >&2
  BIN="$TARGET/release/billable"
fi

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

BILLABLE_USER_RPS=0 BILLABLE_API_TOKEN="$TOKEN" RUST_LOG=warn \
  "$BIN" --db "$WORK/billable.sqlite3" --mbox tests/fixtures/demo.mbox \
  --settings tests/fixtures/demo-settings.json serve --bind "127.0.0.1:$PORT" \
  2>"$WORK/server.log" &
SERVER_PID=$!

BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  if curl -fsS "$BASE/healthz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fsS "$BASE/healthz" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

auth=(-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json")
curl -fsS "${auth[@]}" -d '{}' "$BASE/v1/tools/scan_billable_time" >/dev/null
SUMMARY='{"group_by":"client"}'
CALL='{"id":"call_1","type":"function","function":{"name":"get_time_tracking_summary","arguments":"{\"group_by\":\"client\"}"}}'
echo "summary: $(curl -fsS "${auth[@]}" -d "$SUMMARY" "$BASE/v1/tools/get_time_tracking_summary" | head -c 160)..." >&2

post_script() { # $1 = body
  local body=${1//\\/\\\\}
  body=${body//\"/\\\"}
  cat <<LUA
wrk.method = "POST"
wrk.body = "$body"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
LUA
}
post_script "$SUMMARY" >"$WORK/summary.lua"
post_script "$CALL" >"$WORK/call.lua"

# Prints "req/s p50 p99 non2xx" for one wrk run.
measure() { # $1 = url, $2 = optional lua script
  local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
  [[ -n "${2:-}" ]] && args+=(-s "$2")
  local out
  out="$(wrk "${args[@]}" "$1")"
  echo "$out" >>"$WORK/wrk.log"
  local rps p50 p99 errors
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  errors="$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")"
  echo "$rps $p50 $p99 ${errors:-0}"
}

echo "wrk: $THREADS threads, $CONNECTIONS connections, $DURATION per route, $(nproc) cores" >&2
read -r h_rps h_p50 h_p99 h_err < <(measure "$BASE/healthz")
read -r s_rps s_p50 s_p99 s_err < <(measure "$BASE/v1/tools/get_time_tracking_summary" "$WORK/summary.lua")
read -r c_rps c_p50 c_p99 c_err < <(measure "$BASE/v1/tools/call" "$WORK/call.lua")

printf '\n%-48s %12s %10s %10s %8s %12s\n' route "req/s" p50 p99 non-2xx "vs healthz"
row() { printf '%-48s %12s %10s %10s %8s %11.2fx\n' "$1" "$2" "$3" "$4" "$5" "$(awk -v a="$2" -v b="$h_rps" 'BEGIN {print a / b}')"; }
row "GET /healthz" "$h_rps" "$h_p50" "$h_p99" "$h_err"
row "POST /v1/tools/get_time_tracking_summary" "$s_rps" "$s_p50" "$s_p99" "$s_err"
row "POST /v1/tools/call (summary)" "$c_rps" "$c_p50" "$c_p99" "$c_err"
echo
curl -fsS "$BASE/metrics" | grep -E '^billable_cache_(hits|misses)_total' || true
