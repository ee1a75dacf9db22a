# Provisions what the Supabase store tests need; sourced by scripts/test.sh.
#
# - Postgres: the one on 127.0.0.1:5432 when it accepts `postgres` without a
#   password (Debian's default cluster with trust auth); otherwise (or with
#   BILLABLE_TEST_OWN_POSTGRES=1) a throwaway cluster (initdb into a temp dir) on a
#   free port, installing Debian's `postgresql` package first when there is no initdb.
# - A database of its own for this run, migrated with `billable migrate`.
# - postrust (PostgREST in Rust; `cargo install postrust-server` when absent) on a
#   free port, verifying JWTs with a secret made up for this run.
#
# - Debian's chromium and chromium-driver, installed when absent.
#
# Exports, for tests/api/supabase.rs, tests/api/postgres.rs and tests/api/browser.rs:
#   BILLABLE_TEST_DATABASE_URL   the run's database, as its owner (a superuser)
#   BILLABLE_TEST_POSTGREST_URL  postrust's root
#   BILLABLE_TEST_JWT_SECRET     the HS256 secret postrust verifies tokens with
#   BILLABLE_TEST_CHROMIUM       /usr/bin/chromium
#   BILLABLE_TEST_CHROMEDRIVER   /usr/bin/chromedriver
# Everything is stopped and dropped on exit.

_svc_log() { echo "test-services: $*" >&2; }

# A TCP port nobody listens on (bash's /dev/tcp: no extra tools needed).
_svc_free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( (RANDOM % 20000) + 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  _svc_log "no free port found"
  return 1
}

_svc_wait_port() { # port seconds
  local deadline=$(( SECONDS + $2 ))
  while (( SECONDS < deadline )); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# Runs a command as the `postgres` user when we are root (initdb refuses root).
_svc_as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_svc_cleanup() {
  local status=$?
  if [[ -n "${_SVC_POSTRUST_PID:-}" ]]; then
    kill "$_SVC_POSTRUST_PID" 2>/dev/null || true
    wait "$_SVC_POSTRUST_PID" 2>/dev/null || true
  fi
  if [[ -n "${_SVC_DB:-}" && -n "${_SVC_ADMIN_URL:-}" ]]; then
    psql "$_SVC_ADMIN_URL" -qAtc "drop database if exists \"$_SVC_DB\" with (force)" >/dev/null 2>&1 || true
    # Databases the SQL-level tests made for themselves and left behind on a panic.
    psql "$_SVC_ADMIN_URL" -qAtc "select datname from pg_database where datname like '${_SVC_DB}_%'" 2>/dev/null |
      while read -r db; do
        [[ -n "$db" ]] && psql "$_SVC_ADMIN_URL" -qAtc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
      done
  fi
  if [[ -n "${_SVC_PGROOT:-}" ]]; then
    _svc_as_postgres "$_SVC_PGBIN/pg_ctl" -D "$_SVC_PGROOT/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$_SVC_PGROOT"
  fi
  [[ -n "${_SVC_LOG:-}" ]] && rm -f "$_SVC_LOG"
  return $status
}
trap _svc_cleanup EXIT

_svc_postgres() {
  # BILLABLE_TEST_OWN_POSTGRES=1 always starts a throwaway cluster.
  if [[ "${BILLABLE_TEST_OWN_POSTGRES:-}" != 1 ]] && command -v psql >/dev/null 2>&1 &&
    psql "postgresql://postgres@127.0.0.1:5432/postgres" -qAtc "select 1" >/dev/null 2>&1; then
    _SVC_SERVER="postgresql://postgres@127.0.0.1:5432"
    _svc_log "using the Postgres on 127.0.0.1:5432"
    return 0
  fi
  _SVC_PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [[ -z "$_SVC_PGBIN" || ! -x "$_SVC_PGBIN/initdb" ]]; then
    _svc_log "installing Debian's postgresql package"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
    _SVC_PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  local port
  port=$(_svc_free_port)
  _SVC_PGROOT=$(mktemp -d /tmp/billable-pg.XXXXXX)
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$_SVC_PGROOT"; fi
  _svc_log "starting a throwaway Postgres cluster on port $port"
  _svc_as_postgres "$_SVC_PGBIN/initdb" -D "$_SVC_PGROOT/data" -U postgres -A trust -E UTF8 >/dev/null
  _svc_as_postgres "$_SVC_PGBIN/pg_ctl" -D "$_SVC_PGROOT/data" -w -l "$_SVC_PGROOT/log" \
    -o "-p $port -k $_SVC_PGROOT -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  PATH="$_SVC_PGBIN:$PATH"
  _SVC_SERVER="postgresql://postgres@127.0.0.1:$port"
}

_svc_postrust() {
  if ! command -v postrust >/dev/null 2>&1; then
    if [[ -x "$HOME/.cargo/bin/postrust" ]]; then
      PATH="$HOME/.cargo/bin:$PATH"
    else
      _svc_log "installing postrust (cargo install postrust-server); this compiles for a few minutes"
      cargo install postrust-server --locked >&2 || cargo install postrust-server >&2
      PATH="$HOME/.cargo/bin:$PATH"
    fi
  fi
  local port
  port=$(_svc_free_port)
  local db_uri="postgresql://authenticator@${_SVC_SERVER#postgresql://postgres@}/$_SVC_DB"
  _SVC_LOG=$(mktemp /tmp/billable-postrust.XXXXXX.log)
  env -u DATABASE_URL \
    PGRST_DB_URI="$db_uri" \
    PGRST_DB_SCHEMAS=public \
    PGRST_DB_ANON_ROLE=anon \
    PGRST_JWT_SECRET="$BILLABLE_TEST_JWT_SECRET" \
    PGRST_JWT_AUD=authenticated \
    PGRST_COMPAT_MODE=true \
    PGRST_SERVER_HOST=127.0.0.1 \
    PGRST_SERVER_PORT="$port" \
    PGRST_DB_POOL=10 \
    RUST_LOG=warn \
    postrust >"$_SVC_LOG" 2>&1 &
  _SVC_POSTRUST_PID=$!
  if ! _svc_wait_port "$port" 60; then
    _svc_log "postrust did not start; its log:"
    cat "$_SVC_LOG" >&2
    return 1
  fi
  export BILLABLE_TEST_POSTGREST_URL="http://127.0.0.1:$port"
  _svc_log "postrust serves $_SVC_DB at $BILLABLE_TEST_POSTGREST_URL"
}

# Debian's Chromium and chromedriver for tests/api/browser.rs (each test starts its
# own chromedriver on a free port and stops it).
_svc_chromium() {
  if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    _svc_log "installing Debian's chromium and chromium-driver packages"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >&2
  fi
  export BILLABLE_TEST_CHROMIUM=/usr/bin/chromium BILLABLE_TEST_CHROMEDRIVER=/usr/bin/chromedriver
}

_svc_chromium
_svc_postgres
_SVC_ADMIN_URL="$_SVC_SERVER/postgres"
_SVC_DB="billable_test_$$_$RANDOM"
psql "$_SVC_ADMIN_URL" -qAtc "create database \"$_SVC_DB\"" >/dev/null
export BILLABLE_TEST_DATABASE_URL="$_SVC_SERVER/$_SVC_DB"
export BILLABLE_TEST_JWT_SECRET
BILLABLE_TEST_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
_svc_log "migrating $_SVC_DB with billable migrate"
# The binary the test build made (BILLABLE_BIN) when there is one: `cargo run` would
# build it again with other dependency features, which costs minutes from cold.
if [[ -n "${BILLABLE_BIN:-}" && -x "$BILLABLE_BIN" ]]; then
  DATABASE_URL="$BILLABLE_TEST_DATABASE_URL" "$BILLABLE_BIN" migrate >&2
else
  DATABASE_URL="$BILLABLE_TEST_DATABASE_URL" cargo run --quiet --locked -- migrate >&2
fi
_svc_postrust
