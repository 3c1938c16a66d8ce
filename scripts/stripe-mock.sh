#!/usr/bin/env bash
# stripe-mock.sh — run Stripe's official mock API server (github.com/stripe/stripe-mock) for
# the Stripe issuer adapter's tests.
#
#   scripts/stripe-mock.sh [start]   install if missing, start in the background, wait until it answers
#   scripts/stripe-mock.sh stop      stop the instance this script started
#   scripts/stripe-mock.sh status    exit 0 if it answers
#
# Idempotent: "start" does nothing when a stripe-mock already answers on the address.
# It is built from source through the Go module proxy (no binary download), pinned to
# STRIPE_MOCK_VERSION, into a per-version cache directory.
#
# Environment:
#   STRIPE_MOCK_VERSION  default v0.203.0
#   STRIPE_MOCK_ADDR     default 127.0.0.1:12111 (the tests read CARDWARDEN_TEST_STRIPE_MOCK_URL,
#                        default http://127.0.0.1:12111)
#   STRIPE_MOCK_DIR      pid and log files; default ${TMPDIR:-/tmp}/cardwarden-stripe-mock
set -euo pipefail

VERSION="${STRIPE_MOCK_VERSION:-v0.203.0}"
ADDR="${STRIPE_MOCK_ADDR:-127.0.0.1:12111}"
RUN_DIR="${STRIPE_MOCK_DIR:-${TMPDIR:-/tmp}/cardwarden-stripe-mock}"
BIN_DIR="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/cardwarden/stripe-mock/${VERSION}"
BIN="${BIN_DIR}/stripe-mock"
PIDFILE="${RUN_DIR}/stripe-mock.pid"
LOG="${RUN_DIR}/stripe-mock.log"
HOST="${ADDR%:*}"
PORT="${ADDR##*:}"

# answers reports whether a stripe-mock serves the Issuing API on ADDR.
answers() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -m 2 -H 'Authorization: Bearer sk_test_123' "http://${ADDR}/v1/issuing/cards?limit=1" >/dev/null 2>&1
    return
  fi
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET /v1/issuing/cards?limit=1 HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer sk_test_123\r\n\r\n" "$0" >&3
    IFS= read -r line <&3
    [[ $line == *" 200 "* ]]' "$HOST" "$PORT" 2>/dev/null
}

# ours prints the pid of the stripe-mock this script started, if it is still running.
ours() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q stripe-mock || return 1
  echo "$pid"
}

install() {
  [[ -x "$BIN" ]] && return
  command -v go >/dev/null 2>&1 || { echo "stripe-mock.sh: go is required to build stripe-mock" >&2; exit 1; }
  echo "stripe-mock.sh: installing github.com/stripe/stripe-mock@${VERSION} into ${BIN_DIR}" >&2
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "github.com/stripe/stripe-mock@${VERSION}"
}

start() {
  if answers; then
    echo "stripe-mock already answering on http://${ADDR}"
    return
  fi
  install
  mkdir -p "$RUN_DIR"
  if ! ours >/dev/null; then
    # setsid: the server must outlive this script and the shell that called it.
    setsid nohup "$BIN" -http-addr "$ADDR" >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 120); do
    if answers; then
      echo "stripe-mock ${VERSION} answering on http://${ADDR} (pid $(cat "$PIDFILE"), log ${LOG})"
      return
    fi
    if ! ours >/dev/null; then
      echo "stripe-mock.sh: stripe-mock exited; its log:" >&2
      cat "$LOG" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  echo "stripe-mock.sh: stripe-mock did not answer on http://${ADDR} within 60s; its log:" >&2
  cat "$LOG" >&2 || true
  exit 1
}

stop() {
  local pid
  if pid="$(ours)"; then
    kill "$pid"
    for _ in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    rm -f "$PIDFILE"
    echo "stripe-mock stopped"
  else
    echo "stripe-mock.sh: no stripe-mock started by this script is running" >&2
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) answers && echo "stripe-mock answering on http://${ADDR}" ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
