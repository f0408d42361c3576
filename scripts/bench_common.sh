# Shared by the benchmark scripts (sourced, not run): a work folder removed on exit (kept with
# KEEP=1), the server they start stopped on exit, and a process's CPU time in clock ticks.
WORK=$(mktemp -d); [ -n "${KEEP:-}" ] && echo "work: $WORK" >&2
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
hz=$(getconf CLK_TCK)
# User and system CPU of process $1 so far, in ticks of 1/hz s.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
