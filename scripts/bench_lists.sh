#!/usr/bin/env bash
# Benchmark list subscriptions (RFC 4662) on this machine; prints a Markdown table on stdout.
#
#   scripts/bench_lists.sh            (parameters below, from the environment)
#
# LISTS list subscriptions of MEMBERS members each (request-contained, RFC 5367) are set up
# with SIPp (scripts/sipp/gen_list_watch.sh, over TCP, at SETUP_RATE per second), against a
# fresh server on SQLite. Then every member goes through 5 changes 50 ms apart
# (fanout_publish.xml at CHURN_RATE members per second). The list watchers answer every NOTIFY
# until they see the last member's final state, then unsubscribe. Measured: set-up time and
# server CPU per list subscription, list NOTIFYs delivered per second during the churn and
# the resources (member states) they carried, server CPU per NOTIFY. Run once with the
# default throttle (rls.min_notify_interval_ms = 1000) and once with INTERVAL_FAST (default
# 0: every change is notified as soon as the previous NOTIFY is answered), which shows the
# server's ceiling. Everything on loopback, bounded by `timeout`.
# Defaults: LISTS=200 MEMBERS=100 SETUP_RATE=50 CHURN_RATE=100 INTERVAL_FAST=0.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
LISTS=${LISTS:-200}
MEMBERS=${MEMBERS:-100}
SETUP_RATE=${SETUP_RATE:-50}
CHURN_RATE=${CHURN_RATE:-100}
INTERVAL_FAST=${INTERVAL_FAST:-0}
command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 2; }
cargo build --release --locked --quiet --bin presenced >&2
BIN=target/release/presenced
# shellcheck source=scripts/bench_common.sh
. scripts/bench_common.sh
now_ms() { date +%s%3N; }

scripts/sipp/gen_csv.sh "$MEMBERS" 1 example.org "$WORK" >/dev/null
scripts/sipp/gen_list_watch.sh "$MEMBERS" example.org "$WORK/list_watch.xml" >/dev/null

# One run with throttle $1 ms; prints a table row.
run() {
  local interval=$1 dir="$WORK/run-$1"
  mkdir -p "$dir"
  cat > "$dir/presenced.toml" <<CONF
[sip]
listen = ["tcp:127.0.0.1:0"]
max_tcp_connections = 20000
[store]
url = "sqlite://$dir/presenced.db"
[rls]
min_notify_interval_ms = $interval
[log]
level = "warn,presenced::app=info"
[http]
listen = ["127.0.0.1:0"]
CONF
  start_presenced "$dir/presenced.toml" "$dir/log"
  local tcp=$TCP
  local c0 t0 c1 t1 c2 t2
  c0=$(cpu_ticks "$SERVER_PID"); t0=$(now_ms)
  ( cd "$dir" && timeout -s KILL 300 sipp "$tcp" -t t1 -i 127.0.0.1 -p 0 -sf "$WORK/list_watch.xml" \
      -inf "$WORK/presentities.csv" -m "$LISTS" -r "$SETUP_RATE" -l "$LISTS" -timeout 280s -nostdin \
      -trace_screen -screen_file "$dir/watch.screen" > "$dir/watch.out" 2>&1 ) &
  local watchers=$!
  # Set-up is done when every list has had its first NOTIFY: wait for the server to go idle.
  local last=-1 cur
  while :; do
    sleep 1
    cur=$(cpu_ticks "$SERVER_PID")
    [ "$cur" = "$last" ] && break
    last=$cur
  done
  c1=$(cpu_ticks "$SERVER_PID"); t1=$(now_ms)
  ( cd "$dir" && timeout -s KILL 200 sipp "$tcp" -t t1 -i 127.0.0.1 -p 0 -sf "$REPO/scripts/sipp/fanout_publish.xml" \
      -inf "$WORK/presentities.csv" -m "$MEMBERS" -r "$CHURN_RATE" -l "$MEMBERS" -timeout 180s -nostdin \
      > "$dir/publish.out" 2>&1 ) || true
  wait "$watchers" || true
  c2=$(cpu_ticks "$SERVER_PID"); t2=$(now_ms)
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  local ok notifies resources
  ok=$(sed -n 's/.*Successful call.*| *\([0-9]*\) *$/\1/p' "$dir/watch.screen" | tail -1); ok=${ok:-0}
  # Every NOTIFY row of the watcher scenario, minus the first full state and the final one.
  notifies=$(awk '/NOTIFY <----------/ {n += $3} END {print n + 0}' "$dir/watch.screen")
  local churn_notifies=$((notifies - 2 * LISTS))
  awk -v lists="$LISTS" -v ok="$ok" -v i="$interval" -v su=$((t1 - t0)) -v sc=$((c1 - c0)) \
      -v ch=$((t2 - t1)) -v cc=$((c2 - c1)) -v n="$churn_notifies" -v hz="$hz" -v m="$MEMBERS" 'BEGIN {
    printf "| %d ms | %d × %d | %d | %.1f | %.0f | %d | %.1f | %.0f | %.0f |\n",
      i, lists, m, ok, su / 1000, sc / hz * 1e6 / lists, n, ch / 1000, n / (ch / 1000),
      (n > 0 ? cc / hz * 1e6 / n : 0) }'
}

echo "| min_notify_interval | lists × members | lists that saw every change | set-up wall s (SIPp offers SETUP_RATE/s; idle detection adds up to 2 s) | server CPU µs per list set-up | churn NOTIFYs | churn s | list NOTIFY/s delivered | server CPU µs per list NOTIFY |"
echo "|---|---|---|---|---|---|---|---|---|"
run 1000
[ -n "${ONLY_SLOW:-}" ] || run "$INTERVAL_FAST"
