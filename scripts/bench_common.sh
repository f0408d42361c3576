# Shared by the benchmark scripts (sourced, not run; they set BIN): a work folder removed on
# exit (kept with KEEP=1), the server they start stopped on exit, starting it, and a process's
# CPU time in clock ticks.
WORK=$(mktemp -d); [ -n "${KEEP:-}" ] && echo "work: $WORK" >&2
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
hz=$(getconf CLK_TCK)
# User and system CPU of process $1 so far, in ticks of 1/hz s.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Starts $BIN with config $1, logging to $2, and waits until it serves: sets SERVER_PID and
# TCP (its TCP address); a server that does not start ends the script.
start_presenced() {
  "$BIN" --config "$1" 2> "$2" &
  SERVER_PID=$!
  TCP=""
  for _ in $(seq 300); do
    TCP=$(sed -n 's/.*listening on tcp:\([0-9.:]*\).*/\1/p' "$2" | head -1)
    [ -n "$TCP" ] && grep -q " running" "$2" && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$2" >&2; exit 1
}
