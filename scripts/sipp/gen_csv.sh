#!/usr/bin/env bash
# Generates the SIPp injection files for N presentities and W watchers per presentity.
#   usage: gen_csv.sh N W [DOMAIN] [OUTDIR]
# Writes OUTDIR/presentities.csv (N lines: user;domain) and OUTDIR/watchers.csv (N*W lines,
# presentity-major), both SEQUENTIAL. Defaults: DOMAIN=example.org, OUTDIR=. (this folder).
set -euo pipefail
n=${1:?usage: gen_csv.sh N W [DOMAIN] [OUTDIR]}
w=${2:?usage: gen_csv.sh N W [DOMAIN] [OUTDIR]}
domain=${3:-example.org}
out=${4:-.}
mkdir -p "$out"
awk -v n="$n" -v d="$domain" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) printf "user%d;%s\n", i, d }' > "$out/presentities.csv"
awk -v n="$n" -v w="$w" -v d="$domain" 'BEGIN { print "SEQUENTIAL"; for (i = 0; i < n; i++) for (j = 0; j < w; j++) printf "user%d;%s\n", i, d }' > "$out/watchers.csv"
