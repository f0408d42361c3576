#!/usr/bin/env bash
# Benchmark presenced on this machine and print BENCHMARKS.md's tables (Markdown) on stdout.
#
#   scripts/bench.sh [--quick] > BENCHMARKS.md
#
# What it does, all on loopback, every load bounded in count and time:
#  1. builds the release binaries (presenced, presenced-load);
#  2. for each SIPp scenario (PUBLISH, SUBSCRIBE, REGISTER cycles) over UDP and TCP, starts a
#     fresh server and steps the call rate up (STEPS, STEP_SECONDS each); the sustained rate is
#     the highest step with zero failed calls and a p99 response time under 100 ms. It records
#     server CPU per completed call (from /proc/PID/stat) and SIPp's own CPU beside it;
#  3. with presenced-load (pipelined TCP, cheap NOTIFY answers) measures the server's ceiling
#     for PUBLISH and SUBSCRIBE cycles and its CPU per transaction; and that ceiling with the
#     HTTP side off against it scraped (GET /metrics) every second, in alternating runs;
#  4. fan-out: N presentities x W watchers held, PUBLISH changes at stepped rates; NOTIFY/s
#     delivered and PUBLISH -> NOTIFY latency (p50/p99), including the 24,000 NOTIFY/s point;
#     the same for busy lamps (the dialog package);
#  5. RSS with 10,000 and 100,000 held subscriptions;
#  6. durable commits (SQLite; PostgreSQL too when BENCH_PG_URL is set) against memory://;
#  7. kill -9 with 100,000 stored subscriptions: reload time and the time until every one
#     has had its recovered NOTIFY;
#  8. list subscriptions and member churn (scripts/bench_lists.sh);
#  9. lists of 1,000 phone numbers resolved through each users database
#     (scripts/bench_phones.sh: SQLite; PostgreSQL with BENCH_PG_URL; MariaDB with
#     BENCH_MYSQL_URL).
# Parameters (environment): ONLY (section names: sipp ceiling metrics durable fanout blf memory
# restart lists phones;
# default all), STEPS (SIPp call rates, default "250 500 1000 2000 4000"), DURABLE_WINDOWS
# (calls in flight per connection tried for each store, default "16 32 48 64": each store's
# best lies in that range on this machine, memory:// at 16 to 32, the durable stores at 32 to 64),
# STEP_SECONDS (default 5), LOAD_SECONDS (presenced-load runs, default 5), RUNS (repeats of each
# presenced-load measurement, median reported, default 3).
# PIN (default 1 on a machine of 2 or more CPUs, else 0): the server's SIP thread runs on CPU 0
# (`[affinity] sip_thread`), its other threads and every load generator (SIPp, presenced-load)
# on CPU 1, so that neither the instrument nor the store's thread shares the SIP thread's core;
# PIN=0 leaves every thread to the scheduler. A co-located PostgreSQL is left to the scheduler.
# --quick: fewer steps and shorter runs (a check that the script works, not figures).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-"250 500 1000 2000 4000"}
STEP_SECONDS=${STEP_SECONDS:-5}
LOAD_SECONDS=${LOAD_SECONDS:-5}
HOLD_BIG=${HOLD_BIG:-100000}
if [ "${1:-}" = "--quick" ]; then
  STEPS="200 400"; STEP_SECONDS=2; LOAD_SECONDS=2; HOLD_BIG=20000; RUNS=1
fi

command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time missing: apt-get install -y time" >&2; exit 2; }
cargo build --release --locked --quiet --bins >&2
PIN=${PIN:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}
LOADPIN=()
if [ "$PIN" = 1 ]; then
  command -v taskset >/dev/null || { echo "taskset missing: apt-get install -y util-linux" >&2; exit 2; }
  LOADPIN=(taskset -c 1)
fi
BIN=target/release/presenced
LOAD=target/release/presenced-load
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ticks_per_s=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# Starts a fresh server on free ports; sets SERVER_PID, UDP, TCP. $1: store URL (default a
# fresh SQLite file); $2: keep the folder (a restart on the same database).
start_server() {
  stop_server
  local dir="$WORK/server"
  if [ -z "${2:-}" ]; then rm -rf "$dir"; mkdir -p "$dir"; fi
  local url=${1:-sqlite://$dir/presenced.db}
  local http_listen=${HTTP_LISTEN:-'["127.0.0.1:0"]'}
  cat > "$dir/presenced.toml" <<EOF
[sip]
listen = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
max_tcp_connections = 20000
[store]
url = "$url"
[log]
level = "warn,presenced::app=info,presenced::http=info,presenced::presence::agent=info"
[http]
listen = $http_listen
EOF
  if [ "$PIN" = 1 ]; then
    printf '[affinity]\nsip_thread = [0]\nother_threads = [1]\n' >> "$dir/presenced.toml"
  fi
  : > "$dir/log"
  "$BIN" --config "$dir/presenced.toml" 2>> "$dir/log" &
  SERVER_PID=$!
  for _ in $(seq 300); do
    UDP=$(sed -n 's/.*listening on udp:\([0-9.:]*\).*/\1/p' "$dir/log" | head -1)
    TCP=$(sed -n 's/.*listening on tcp:\([0-9.:]*\).*/\1/p' "$dir/log" | head -1)
    [ -n "$UDP" ] && [ -n "$TCP" ] && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$dir/log" >&2; exit 1
}
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi
}

# p99 of the response times (ms) in SIPp rtt files.
p99_ms() {
  cat "$@" 2>/dev/null | awk -F';' 'NR>1 && $2 ~ /^[0-9.]+$/ {print $2}' | sort -n |
    awk '{v[NR]=$1} END {if (NR==0) {print "n/a"} else {i=int(NR*0.99); if (i<1) i=1; print v[i]}}'
}
# SIPp reports whole milliseconds: 0 means under 1 ms.
fmt_ms() { if [ "$1" = 0 ]; then echo "< 1"; else echo "$1"; fi
}

scripts/sipp/gen_csv.sh 1000 1 example.org "$WORK" >/dev/null

# One SIPp run: scenario, transport (u1|t1), address, rate, calls. Prints
# "successful failed p99_ms server_us_per_call sipp_us_per_call".
sipp_step() {
  local sc=$1 t=$2 addr=$3 rate=$4 calls=$5 dir="$WORK/sipp-$1-$2-$4"
  mkdir -p "$dir"
  local c0; c0=$(cpu_ticks "$SERVER_PID")
  # SIPp's own -timeout does not always end it under overload; `timeout` does.
  ( cd "$dir" && /usr/bin/time -f "%U %S" -o "$dir/time" timeout -s KILL $((STEP_SECONDS * 3 + 20)) "${LOADPIN[@]}" sipp "$addr" -t "$t" -i 127.0.0.1 \
      -sf "$OLDPWD/scripts/sipp/$sc.xml" -inf "$WORK/presentities.csv" -m "$calls" -r "$rate" \
      -l $((rate * 2)) -timeout $((STEP_SECONDS * 3 + 10))s -nostdin -trace_rtt -rtt_freq 1 \
      -trace_stat -fd 1 > "$dir/out" 2>&1 ) || true
  local c1; c1=$(cpu_ticks "$SERVER_PID")
  local ok fail p99 sipp_cpu
  ok=$(sed -n 's/.*Successful call.*| *\([0-9]*\) *$/\1/p' "$dir/out" | tail -1); ok=${ok:-0}
  fail=$(sed -n 's/.*Failed call.*| *\([0-9]*\) *$/\1/p' "$dir/out" | tail -1); fail=${fail:-0}
  p99=$(p99_ms "$dir"/*_rtt.csv)
  sipp_cpu=$(awk '/^[0-9.]+ [0-9.]+$/ {print $1 + $2}' "$dir/time"); sipp_cpu=${sipp_cpu:-0}
  awk -v ok="$ok" -v fail="$fail" -v p99="$p99" -v dt="$((c1 - c0))" -v hz="$ticks_per_s" -v sc="$sipp_cpu" \
    'BEGIN { n = ok > 0 ? ok : 1; printf "%d %d %s %.1f %.1f\n", ok, fail, p99, dt / hz * 1e6 / n, sc * 1e6 / n }'
}

echo "# presenced benchmarks"
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM ($(uname -m), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), loopback only."
echo "Command: \`${ONLY:+ONLY=\"$ONLY\" }${BENCH_PG_URL:+BENCH_PG_URL=… }${BENCH_MYSQL_URL:+BENCH_MYSQL_URL=… }scripts/bench.sh > BENCHMARKS.md\` (STEPS=\"$STEPS\", STEP_SECONDS=$STEP_SECONDS, LOAD_SECONDS=$LOAD_SECONDS, RUNS=${RUNS:-3}, DURABLE_WINDOWS=\"${DURABLE_WINDOWS:-16 32 48 64}\", PIN=$PIN)."
echo "Server and load generator share the machine's $(nproc) cores; the server is one actix thread."
if [ "$PIN" = 1 ]; then
  echo "PIN=1: the server's SIP thread on CPU 0; its other threads and the load generators on CPU 1 (\`taskset -c 1\`); a co-located PostgreSQL where the scheduler puts it."
else
  echo "PIN=0: every thread where the scheduler puts it."
fi
# This VM's speed varies by ±25 % from one run to the next (shared host), so every
# presenced-load figure is the median of RUNS runs, with the range beside it.
RUNS=${RUNS:-3}
# Calls in flight per connection for the durable-commit comparison.
DURABLE_WINDOWS=${DURABLE_WINDOWS:-"16 32 48 64"}
median_range() { sort -n | awk '{v[NR]=$1} END {printf "%s (%s–%s)", v[int((NR+1)/2)], v[1], v[NR]}'; }
# ONLY="sipp ceiling durable fanout memory restart" runs just those sections.
section() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

if section sipp; then
echo
echo "## SIPp: highest sustained call rate (zero failed calls, p99 < 100 ms)"
echo
echo "| scenario | transport | sustained calls/s | p99 ms at that rate | server CPU µs/call | SIPp CPU µs/call | next step |"
echo "|---|---|---|---|---|---|---|"
for sc in publish subscribe register; do
  for t in u1 t1; do
    start_server
    addr=$UDP; [ "$t" = t1 ] && addr=$TCP
    best="none"; best_line=""; next="none higher tried"
    for rate in $STEPS; do
      line=$(sipp_step "$sc" "$t" "$addr" "$rate" $((rate * STEP_SECONDS)))
      read -r ok fail p99 srv sippcpu <<< "$line"
      if [ "$fail" = 0 ] && [ "$ok" -gt 0 ] && [ "$p99" != "n/a" ] && awk -v p="$p99" 'BEGIN{exit !(p < 100)}'; then
        best=$rate; best_line=$line
      else
        next="$rate: $fail failed, p99 $(fmt_ms "$p99") ms"
        break
      fi
    done
    if [ -n "$best_line" ]; then
      read -r ok fail p99 srv sippcpu <<< "$best_line"
      echo "| $sc | ${t/u1/UDP} | $best | $(fmt_ms "$p99") | $srv | $sippcpu | $next |" | sed 's/| t1 |/| TCP |/'
    else
      echo "| $sc | ${t/u1/UDP} | none | | | | $next |" | sed 's/| t1 |/| TCP |/'
    fi
  done
done
stop_server

echo
echo "A PUBLISH call is 4 transactions (initial, refresh, modify, remove); a SUBSCRIBE call is"
echo "SUBSCRIBE, NOTIFY, un-SUBSCRIBE, final NOTIFY; a REGISTER call is 2 transactions."
echo "The sustained rate is capped by the highest step tried or by SIPp's own CPU."
fi
if section ceiling; then
echo
echo "## Server ceiling with presenced-load (pipelined TCP, 4 connections × 32 calls in flight)"
echo
echo "The SIP and presence core alone (\`store.url = \"memory://\"\`); the cost of durable commits is in the next table."
echo
echo "| measure | figure | target |"
echo "|---|---|---|"
for mode in publish subscribe; do
  rates=""; cpus=""
  for _ in $(seq "$RUNS"); do
    start_server "memory://"
    c0=$(cpu_ticks "$SERVER_PID")
    out=$("${LOADPIN[@]}" "$LOAD" "$mode" --server "$TCP" --connections 4 --window 32 --seconds "$LOAD_SECONDS")
    c1=$(cpu_ticks "$SERVER_PID")
    tx=$(sed -n 's/.*transactions=\([0-9]*\).*/\1/p' <<< "$out")
    secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<< "$out")
    fails=$(sed -n 's/.*failures=\([0-9]*\).*/\1/p' <<< "$out")
    [ "$fails" = 0 ] || echo "presenced-load $mode: $fails failures" >&2
    per=$([ "$mode" = publish ] && echo 4 || echo 2)
    rates="$rates $(awk -v tx="$tx" -v s="$secs" -v per="$per" 'BEGIN {printf "%.0f", tx / per / s}')"
    if [ "$mode" = publish ]; then
      cpus="$cpus $(awk -v tx="$tx" -v dt="$((c1 - c0))" -v hz="$ticks_per_s" 'BEGIN {printf "%.1f", dt / hz * 1e6 / tx}')"
    else
      cpus="$cpus $(awk -v tx="$tx" -v dt="$((c1 - c0))" -v hz="$ticks_per_s" 'BEGIN {printf "%.1f", dt / hz * 1e6 / (tx / 2)}')"
    fi
  done
  if [ "$mode" = publish ]; then
    echo "| PUBLISH cycles/s (4 transactions each) | $(tr ' ' '\n' <<< "$rates" | grep . | median_range) | >= 12,000 |"
    echo "| server CPU per PUBLISH transaction, µs | $(tr ' ' '\n' <<< "$cpus" | grep . | median_range) | <= 20 |"
  else
    echo "| SUBSCRIBE cycles/s (SUBSCRIBE, NOTIFY, un-SUBSCRIBE, NOTIFY) | $(tr ' ' '\n' <<< "$rates" | grep . | median_range) | |"
    echo "| server CPU per SUBSCRIBE cycle, µs | $(tr ' ' '\n' <<< "$cpus" | grep . | median_range) | <= 50 |"
  fi
done
echo
echo "Median of $RUNS runs, range in brackets."
fi

if section metrics; then
echo
echo "## Metrics cost: the PUBLISH ceiling with the HTTP side off and scraped every second"
echo
echo "presenced-load publish as in the ceiling table (\`memory://\`); in each run the server starts"
echo "once with \`http.listen = []\` and once with HTTP on and \`GET /metrics\` every second, in turn."
echo "Every metric is recorded in both; the scrape is what HTTP adds."
echo
echo "| HTTP side | PUBLISH cycles/s | server CPU per PUBLISH transaction, µs |"
echo "|---|---|---|"
off_rates=""; on_rates=""; off_cpus=""; on_cpus=""
for _ in $(seq "$RUNS"); do
  for http in off on; do
    if [ "$http" = off ]; then HTTP_LISTEN='[]' start_server "memory://"; else start_server "memory://"; fi
    scraper=""
    if [ "$http" = on ]; then
      addr=$(sed -n 's/.*listening on http:\([0-9.:]*\).*/\1/p' "$WORK/server/log" | head -1)
      ( while sleep 1; do curl -s -o /dev/null "http://$addr/metrics" || true; done ) &
      scraper=$!
    fi
    c0=$(cpu_ticks "$SERVER_PID")
    out=$("${LOADPIN[@]}" "$LOAD" publish --server "$TCP" --connections 4 --window 32 --seconds "$LOAD_SECONDS")
    c1=$(cpu_ticks "$SERVER_PID")
    [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; }
    tx=$(sed -n 's/.*transactions=\([0-9]*\).*/\1/p' <<< "$out")
    secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<< "$out")
    rate=$(awk -v tx="$tx" -v s="$secs" 'BEGIN {printf "%.0f", tx / 4 / s}')
    cpu=$(awk -v tx="$tx" -v dt="$((c1 - c0))" -v hz="$ticks_per_s" 'BEGIN {printf "%.1f", dt / hz * 1e6 / tx}')
    if [ "$http" = off ]; then off_rates="$off_rates $rate"; off_cpus="$off_cpus $cpu"; else on_rates="$on_rates $rate"; on_cpus="$on_cpus $cpu"; fi
  done
done
echo "| off | $(tr ' ' '\n' <<< "$off_rates" | grep . | median_range) | $(tr ' ' '\n' <<< "$off_cpus" | grep . | median_range) |"
echo "| on, scraped every second | $(tr ' ' '\n' <<< "$on_rates" | grep . | median_range) | $(tr ' ' '\n' <<< "$on_cpus" | grep . | median_range) |"
off_med=$(tr ' ' '\n' <<< "$off_rates" | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
on_med=$(tr ' ' '\n' <<< "$on_rates" | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
echo
echo "Median of $RUNS runs, range in brackets; the scraped server's ceiling is $(awk -v a="$off_med" -v b="$on_med" 'BEGIN {printf "%+.1f", (b - a) / a * 100}') % of the unscraped one's (target: no worse than −3 %)."
fi

if section durable; then
echo
echo "## Durable commits against no store (presenced-load)"
echo
echo "Each store's peak: presenced-load over 4 TCP connections with WINDOW calls in flight on each,"
echo "for each WINDOW in \"$DURABLE_WINDOWS\"; the stores take turns within every run so that the VM's"
echo "drift falls on all of them alike. A durable request waits for its group commit, so by"
echo "Little's law it needs more requests in flight to keep the server busy; memory:// is"
echo "compared at its own best window."
echo
echo "| store | PUBLISH cycles/s (window), range | SUBSCRIBE cycles/s (window), range | vs memory:// | server CPU µs per PUBLISH transaction / SUBSCRIBE cycle |"
echo "|---|---|---|---|---|"
STORES="memory:// sqlite"
[ -n "${BENCH_PG_URL:-}" ] && STORES="$STORES postgres"
declare -A VALS CPUS BEST BESTW BESTCPU BESTR
for mode in publish subscribe; do
  for w in $DURABLE_WINDOWS; do
    for _ in $(seq "$RUNS"); do
      for st in $STORES; do
        case $st in
          memory://) start_server "memory://" ;;
          sqlite) start_server ;;
          postgres) psql -q "$BENCH_PG_URL" -c "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench" >&2
                    start_server "$BENCH_PG_URL?options=-c%20search_path%3Dbench" ;;
        esac
        c0=$(cpu_ticks "$SERVER_PID")
        out=$("${LOADPIN[@]}" "$LOAD" "$mode" --server "$TCP" --connections 4 --window "$w" --seconds "$LOAD_SECONDS")
        c1=$(cpu_ticks "$SERVER_PID")
        tx=$(sed -n 's/.*transactions=\([0-9]*\).*/\1/p' <<< "$out")
        secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<< "$out")
        per=$([ "$mode" = publish ] && echo 4 || echo 2)
        unit=$([ "$mode" = publish ] && echo 1 || echo 2)
        VALS[$st,$mode,$w]="${VALS[$st,$mode,$w]:-} $(awk -v tx="$tx" -v s="$secs" -v per="$per" 'BEGIN {printf "%.0f", tx / per / s}')"
        CPUS[$st,$mode,$w]="${CPUS[$st,$mode,$w]:-} $(awk -v tx="$tx" -v u="$unit" -v dt="$((c1 - c0))" -v hz="$ticks_per_s" 'BEGIN {printf "%.1f", dt / hz * 1e6 / (tx / u)}')"
      done
    done
  done
  for st in $STORES; do
    for w in $DURABLE_WINDOWS; do
      med=$(tr ' ' '\n' <<< "${VALS[$st,$mode,$w]}" | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
      if [ "$med" -gt "${BEST[$st,$mode]:-0}" ]; then
        BEST[$st,$mode]=$med; BESTW[$st,$mode]=$w
        BESTR[$st,$mode]=$(tr ' ' '\n' <<< "${VALS[$st,$mode,$w]}" | grep . | sort -n | awk '{v[NR]=$1} END {printf "%s–%s", v[1], v[NR]}')
        BESTCPU[$st,$mode]=$(tr ' ' '\n' <<< "${CPUS[$st,$mode,$w]}" | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
      fi
    done
  done
done
for st in $STORES; do
  awk -v st="$st" -v p="${BEST[$st,publish]}" -v s="${BEST[$st,subscribe]}" \
    -v pw="${BESTW[$st,publish]}" -v sw="${BESTW[$st,subscribe]}" \
    -v pr="${BESTR[$st,publish]}" -v sr="${BESTR[$st,subscribe]}" \
    -v pm="${BEST[memory://,publish]}" -v sm="${BEST[memory://,subscribe]}" \
    -v pc="${BESTCPU[$st,publish]}" -v sc="${BESTCPU[$st,subscribe]}" \
    'BEGIN { printf "| %s | %d (%d), %s | %d (%d), %s | %.1f %% / %.1f %% | %s / %s |\n", st, p, pw, pr, s, sw, sr, 100 * p / pm, 100 * s / sm, pc, sc }'
done
echo
echo "Target: durable figures within 80 % of memory://. Medians of $RUNS runs per window."
fi

# Fan-out rows: $1 the event package (presence or dialog), then the PUBLISH change rates.
fanout_rows() {
  local event=$1; shift
  for rate in "$@"; do
    nrs=""; p50s=""; p99s=""; cpus=""
    for _ in $(seq "$RUNS"); do
      start_server
      c0=$(cpu_ticks "$SERVER_PID")
      out=$("${LOADPIN[@]}" "$LOAD" fanout --event "$event" --server "$TCP" --connections 4 --presentities 1000 --watchers 10 --rate "$rate" --seconds "$LOAD_SECONDS" | tail -1)
      c1=$(cpu_ticks "$SERVER_PID")
      n=$(sed -n 's/.*notifies=\([0-9]*\).*/\1/p' <<< "$out")
      nrs="$nrs $(sed -n 's/.*notify_rate=\([0-9]*\).*/\1/p' <<< "$out")"
      p50s="$p50s $(sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<< "$out" | awk '{printf "%.1f", $1 / 1000}')"
      p99s="$p99s $(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<< "$out" | awk '{printf "%.1f", $1 / 1000}')"
      cpus="$cpus $(awk -v dt="$((c1 - c0))" -v hz="$ticks_per_s" -v n="$n" 'BEGIN {printf "%.1f", (n > 0 ? dt / hz * 1e6 / n : 0)}')"
    done
    m() { tr ' ' '\n' <<< "$1" | grep . | median_range; }
    echo "| $rate | $(m "$nrs") | $(m "$p50s") | $(m "$p99s") | $(m "$cpus") |"
  done
}

if section fanout; then
echo
echo "## Fan-out: 1,000 presentities × 10 watchers (10,000 subscriptions over 4 TCP connections)"
echo
echo "| PUBLISH changes/s offered | NOTIFY/s delivered | PUBLISH → NOTIFY p50 ms | p99 ms | server CPU µs/NOTIFY |"
echo "|---|---|---|---|---|"
fanout_rows presence 2400 5000 10000
echo
echo "Targets: >= 100,000 NOTIFY/s delivered; p99 <= 10 ms at 24,000 NOTIFY/s (the 2,400 changes/s row)."
echo "Server CPU per NOTIFY includes the subscriptions' set-up and the PUBLISH transactions."
fi

if section blf; then
echo
echo "## Busy-lamp fan-out: 1,000 extensions × 10 BLF watchers (dialog package)"
echo
echo "The same load with \`Event: dialog\`: each change is a dialog-info PUBLISH (one confirmed call), each NOTIFY a full-state dialog-info document with the subscription's own version; durable SQLite store."
echo
echo "| PUBLISH changes/s offered | NOTIFY/s delivered | PUBLISH → NOTIFY p50 ms | p99 ms | server CPU µs/NOTIFY |"
echo "|---|---|---|---|---|"
fanout_rows dialog 2400 5000
fi

if section memory; then
echo
echo "## Memory with held subscriptions"
echo
echo "| subscriptions held | server RSS | per subscription (above idle) | target |"
echo "|---|---|---|---|"
for k in 10000 "$HOLD_BIG"; do
  start_server
  idle=$(rss_kb "$SERVER_PID")
  "${LOADPIN[@]}" "$LOAD" hold --server "$TCP" --connections 16 --subscriptions "$k" --seconds 600 > "$WORK/hold" &
  lp=$!
  for _ in $(seq 1200); do grep -q '^held' "$WORK/hold" 2>/dev/null && break; sleep 0.1; done
  sleep 1
  held=$(sed -n 's/^held \([0-9]*\)/\1/p' "$WORK/hold"); held=${held:-0}
  kb=$(rss_kb "$SERVER_PID")
  kill "$lp" 2>/dev/null || true; wait "$lp" 2>/dev/null || true
  awk -v k="$held" -v kb="$kb" -v idle="$idle" 'BEGIN {
    printf "| %d | %.1f MiB | %.2f KB | <= 1 KB at 100,000 |\n", k, kb / 1024, (k > 0 ? (kb - idle) * 1.024 / k : 0) }'
done
stop_server
fi

if section restart; then
echo
echo "## Restart: $HOLD_BIG stored subscriptions after kill -9"
echo
echo "| store | state loaded (all but the plain subscriptions) | every dialog restored | first recovered NOTIFY | every subscription NOTIFIED | target |"
echo "|---|---|---|---|---|---|"
for st in sqlite ${BENCH_PG_URL:+postgres}; do
  loads=""; restores=""; firsts=""; alls=""; counts=""
  for _ in $(seq "$RUNS"); do
    if [ "$st" = postgres ]; then
      psql -q "$BENCH_PG_URL" -c "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench" >&2
      url="$BENCH_PG_URL?options=-c%20search_path%3Dbench"
    else
      url="sqlite://$WORK/server/presenced.db"
    fi
    start_server "$url"
    "${LOADPIN[@]}" "$LOAD" recover --server "$TCP" --connections 16 --subscriptions "$HOLD_BIG" --seconds 300 > "$WORK/recover" &
    lp=$!
    for _ in $(seq 3000); do grep -q '^held' "$WORK/recover" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    t0=$(date +%s%3N)
    start_server "$url" keep
    wait "$lp" || true
    out=$(tail -1 "$WORK/recover")
    loaded=$(sed -n 's/.*loaded in \([0-9]*\) ms.*/\1/p' "$WORK/server/log" | tail -1)
    # The log's own time stamp of the line saying the last stored dialog is restored.
    restored=$(sed -n 's/^\[\([^ ]*\) .*subscriptions restored (.*/\1/p' "$WORK/server/log" | tail -1)
    restored=$(date -d "${restored:-@0}" +%s%3N)
    first=$(sed -n 's/.*first_unix_ms=\([0-9]*\).*/\1/p' <<< "$out")
    all=$(sed -n 's/.*all_unix_ms=\([0-9]*\).*/\1/p' <<< "$out")
    n=$(sed -n 's/.*recovered=\([0-9]*\).*/\1/p' <<< "$out")
    loads="$loads ${loaded:-0}"
    restores="$restores $(awk -v r="$restored" -v t0="$t0" 'BEGIN {printf "%.2f", (r - t0) / 1000}')"
    firsts="$firsts $(awk -v f="$first" -v t0="$t0" 'BEGIN {printf "%.2f", (f - t0) / 1000}')"
    alls="$alls $(awk -v a="$all" -v t0="$t0" 'BEGIN {printf "%.2f", (a - t0) / 1000}')"
    counts="$counts ${n:-0}"
    stop_server
  done
  med() { tr ' ' '\n' <<< "$1" | grep . | median_range; }
  echo "| $st | $(med "$loads") ms | $(med "$restores") s | $(med "$firsts") s | $(med "$alls") s (NOTIFYs received per run:$counts of $HOLD_BIG) | <= 2 s |"
done
echo
echo "Times from the restart (process start) on, median of $RUNS restarts (range). The NOTIFYs go over new TCP connections to the watchers' Contact."
fi

if section lists; then
echo
echo "## List subscriptions: 200 lists × 100 members, then member churn (SIPp)"
echo
echo "Command: \`scripts/bench_lists.sh\` (LISTS=200 MEMBERS=100 SETUP_RATE=50 CHURN_RATE=100), SQLite store, SIPp over TCP. Each list subscription is an RFC 5367 list of 100 members; the churn is 5 PUBLISH changes per member, 50 ms apart, each relevant to all 200 lists. \"churn NOTIFYs\" excludes one full-state and one final NOTIFY per list. Run once with the default throttle (\`rls.min_notify_interval_ms = 1000\`) and once without (0: each list NOTIFYs as soon as its previous NOTIFY is answered), which shows the server's ceiling."
echo
scripts/bench_lists.sh
fi

if section phones; then
echo
echo "## Phone-number lists: 1,000 numbers resolved through the users database"
echo
echo "Command: \`scripts/bench_phones.sh\` (LISTS=20 MEMBERS=1000${BENCH_PG_URL:+, BENCH_PG_URL=…}${BENCH_MYSQL_URL:+, BENCH_MYSQL_URL=…}): one table of 20,000 accounts, each owning a number, indexed on the phone column; 20 request-contained lists of 1,000 numbers each, one after another, no number in two lists, each unsubscribed before the next; users settings at their defaults. Target: the first full state with every match within 300 ms."
echo
LISTS=20 MEMBERS=1000 scripts/bench_phones.sh
fi

# The guide: what the tables measure and how to read them (the same for every run).
cat <<'GUIDE'

## Reading the tables

- **Noise.** These virtual machines' speed varies by about ±25 % from one run to the next, and
  more between phases of a shared host. Every presenced-load figure is the median of RUNS runs
  with its range; the durable stores take turns within every run so that drift falls on all of
  them alike. A change is judged in alternating runs of the binary before and after it (or by
  instruction counts under callgrind), never against figures from another run or machine.
- **SIPp against the server.** SIPp spends tens of microseconds of its own CPU per call, so on
  two cores it saturates before the server does: the SIPp table says what a SIPp load of each
  scenario gets, within the steps tried; the presenced-load tables are the server's ceiling.
  Server CPU per call at low rates is mostly wake-ups.
- **Metrics.** Recording a metric is an atomic add on the SIP thread, paid with HTTP off too;
  a scrape is rendered on the HTTP worker's thread, so its cost is the one table's difference.
- **Durable commits.** Every 2xx waits for its group commit, so by Little's law a durable store
  needs more requests in flight than memory:// to keep the SIP thread busy: each store is shown
  at its best window. The server CPU column includes the store's thread.
- **Fan-out** (presence, and busy lamps with the dialog package). NOTIFY/s counts NOTIFYs
  answered by the watchers; latency is from the PUBLISH's send to the NOTIFY's arrival at the
  watcher. Server CPU per NOTIFY includes the PUBLISH transactions that caused them.
- **Memory.** RSS above the idle server, divided by the subscriptions held: one actor per
  subscription (context, mailbox, timers), its dialog state, and its entries in the
  dispatcher's dialog table and the presentity's watcher table.
- **Restart.** Times from the restarted process's start: the state loaded from the database,
  every stored dialog restored, and the first and the last recovered NOTIFY received by the
  watchers (over new TCP connections to their Contact).
- **Lists.** The throttle (`rls.min_notify_interval_ms`) folds member changes into one partial
  NOTIFY per list and interval; without it, changes coalesce only while a NOTIFY is in flight.
- **Phone-number lists.** The users database answers one query per `users.phones_per_query`
  numbers; each number's owner is then known to exist, with no second query. The CPU figure
  includes the users database pool's thread and the list's unsubscribe.
GUIDE
