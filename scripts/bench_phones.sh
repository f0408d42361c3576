#!/usr/bin/env bash
# Benchmark phone-number lists (liblinphone's address-book lists) on this machine; prints a
# Markdown table on stdout, one row per users database.
#
#   scripts/bench_phones.sh            (parameters below, from the environment)
#
# For each users database (SQLite always; PostgreSQL when BENCH_PG_URL is set; MariaDB when
# BENCH_MYSQL_URL is set, e.g. mysql://root@127.0.0.1:3306/test, which builds presenced with the
# `mysql` feature), a table of LISTS × MEMBERS accounts, each owning one number, with an index
# on the phone column, is filled. A fresh server (SQLite store, the users settings' defaults)
# is then sent LISTS request-contained list subscriptions of MEMBERS numbers each, one after
# another, each unsubscribed before the next (`presenced-load phone-list`, pipelined TCP); no
# two lists share a number, so every list is resolved by the database, not by the cache. Measured: from the SUBSCRIBE to the end of the
# first full state, with every number matched (median and slowest of LISTS), and server CPU
# per list (set-up and unsubscribe). With two or more CPUs the server's SIP thread runs on
# CPU 0, its other threads (the users database pool among them) and the load generator on
# CPU 1. Everything on loopback, bounded by `timeout`.
# Defaults: LISTS=20 MEMBERS=1000.
set -euo pipefail
cd "$(dirname "$0")/.."
LISTS=${LISTS:-20}
MEMBERS=${MEMBERS:-1000}
FEATURES=()
[ -n "${BENCH_MYSQL_URL:-}" ] && FEATURES=(--features mysql)
cargo build --release --locked --quiet "${FEATURES[@]}" --bin presenced --bin presenced-load >&2
BIN=target/release/presenced
LOAD=target/release/presenced-load
# shellcheck source=scripts/bench_common.sh
. scripts/bench_common.sh
TABLE=bench_phone_accounts
if [ "$(nproc)" -ge 2 ]; then
  AFFINITY=$'[affinity]\nsip_thread = [0]\nother_threads = [1]'
  PIN_LOAD=(taskset -c 1)
else
  AFFINITY=""
  PIN_LOAD=()
fi

# The accounts, as SQL every backend takes.
accounts_sql() {
  echo "DROP TABLE IF EXISTS $TABLE;"
  echo "CREATE TABLE $TABLE (login VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, phone VARCHAR(32), PRIMARY KEY (login, domain));"
  echo "CREATE INDEX ${TABLE}_phone ON $TABLE (phone);"
  awk -v n="$((LISTS * MEMBERS))" -v t="$TABLE" 'BEGIN {
    printf "INSERT INTO %s (login, domain, phone) VALUES ", t
    for (i = 0; i < n; i++) printf "%s(\047u%06d\047, \047example.org\047, \047+3361%07d\047)", (i ? ", " : ""), i, i
    print ";" }'
}

# One run against the users database at $2 (named $1); prints a table row.
run() {
  local name=$1 url=$2 dir="$WORK/$1"
  mkdir -p "$dir"
  cat > "$dir/presenced.toml" <<CONF
[sip]
listen = ["tcp:127.0.0.1:0"]
[store]
url = "sqlite://$dir/presenced.db"
[users]
db_url = "$url"
user_query = "SELECT login FROM $TABLE WHERE login = :user AND domain = :domain"
phones_query = "SELECT login AS username, domain, phone FROM $TABLE WHERE phone IN (:phones)"
[rls]
max_resources = $MEMBERS
[log]
level = "warn,presenced::app=info"
[http]
listen = ["127.0.0.1:0"]
$AFFINITY
CONF
  start_presenced "$dir/presenced.toml" "$dir/log"
  local tcp=$TCP
  local c0 c1 out
  c0=$(cpu_ticks "$SERVER_PID")
  out=$(timeout -s KILL 600 "${PIN_LOAD[@]}" "$LOAD" phone-list --server "$tcp" --lists "$LISTS" --members "$MEMBERS")
  c1=$(cpu_ticks "$SERVER_PID")
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  echo "$out" | awk -v name="$name" -v cpu=$((c1 - c0)) -v hz="$hz" -v lists="$LISTS" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "| %s | %d × %d | %s | %s | %d of %d | %.1f |\n", name, lists, v["members"], v["p50_ms"],
      v["max_ms"], v["fewest_matched"], v["members"], cpu / hz * 1000 / lists }'
}

echo "| users database | lists × numbers | first full state, median ms | slowest ms | numbers matched (fewest in a list) | server CPU ms per list (set-up and unsubscribe) |"
echo "|---|---|---|---|---|---|"
accounts_sql | python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.stdin.read()); c.commit()' "$WORK/users.db"
run sqlite "sqlite://$WORK/users.db"
if [ -n "${BENCH_PG_URL:-}" ]; then
  accounts_sql | psql -q "$BENCH_PG_URL" >/dev/null
  run postgres "$BENCH_PG_URL"
  psql -q "$BENCH_PG_URL" -c "DROP TABLE $TABLE" >/dev/null
fi
if [ -n "${BENCH_MYSQL_URL:-}" ]; then
  # mysql://USER[:PASSWORD]@HOST[:PORT]/DB, for the command-line client.
  IFS='|' read -r user pass host port db < <(echo "$BENCH_MYSQL_URL" | sed -E 's#^mysql://([^:@]*)(:([^@]*))?@([^:/]*)(:([0-9]+))?/(.*)$#\1|\3|\4|\6|\7#')
  mysql_cli() { mariadb -u "$user" ${pass:+-p"$pass"} -h "$host" -P "${port:-3306}" "$db"; }
  accounts_sql | mysql_cli
  run mariadb "$BENCH_MYSQL_URL"
  echo "DROP TABLE $TABLE;" | mysql_cli
fi
