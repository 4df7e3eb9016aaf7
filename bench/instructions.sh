#!/usr/bin/env bash
# Instructions per passwordless login (start + login) under callgrind, against the canned nginx
# of bench/passwordless.lua (HTTP/1.1 over TLS): the floor (bench/floor.c), auth0.core alone and
# ours (the Lua API). Each way runs N1 and N2 logins; the difference over N2-N1 removes start-up
# and TLS handshake. Instruction counts do not depend on the machine's load, unlike CPU time,
# so a change of 1% shows. Needs valgrind. Usage: bash bench/instructions.sh [N1] [N2] [MODE]
# (MODE canned, the default, or canned-h2: the same answers over HTTP/2)
set -eu
cd "$(dirname "$0")/.."
N1=${1:-200}; N2=${2:-1200}; MODE=${3:-canned}
case $MODE in canned|canned-h2) ;; *) echo "MODE: canned or canned-h2" >&2; exit 2;; esac
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
make -s all >/dev/null
[ -x build/bench-floor ] && [ build/bench-floor -nt bench/floor.c ] || cc -O2 bench/floor.c -o build/bench-floor -lcurl
dir=$(mktemp -d)
mkfifo "$dir/hold"
# the canned server serves as long as fd 9 (the write end of the fifo) stays open
A0_BENCH_SERVE="$dir/env" lua5.4 bench/passwordless.lua 1 1 "$MODE" <"$dir/hold" >"$dir/serve.log" 2>&1 &
exec 9>"$dir/hold"
trap 'exec 9>&-; wait; rm -rf "$dir"' EXIT
for _ in $(seq 300); do [ -f "$dir/env" ] && break; sleep 0.1; done
[ -f "$dir/env" ] || { cat "$dir/serve.log" >&2; exit 1; }
CMD="$dir/cmd"; REPLY="$dir/reply"
. "$dir/env"

# Instructions of one run (callgrind's "Collected" total).
collected() { USERS=$N2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | awk '/Collected/ { print $NF }'; }

# The floor: its commands through FIFOs, users numbered from 50000000 like in the bench.
floor_run() {
  local n=$1 out
  mkfifo "$CMD" "$REPLY"
  valgrind --tool=callgrind --callgrind-out-file=/dev/null build/bench-floor "${FLOOR_ARGS[@]}" 2>"$dir/floor.err" &
  exec 7>"$CMD" 8<"$REPLY"
  echo "start 50000001 $((50000000 + n))" >&7; read -r out <&8
  { echo "login 50000001 $((50000000 + n))"; for _ in $(seq "$n"); do echo 123456; done; } >&7; read -r out <&8
  echo quit >&7; read -r out <&8
  exec 7>&- 8<&-
  wait
  rm -f "$CMD" "$REPLY"
  awk '/Collected/ { print $NF }' "$dir/floor.err"
}

per_login() { echo $(( ($2 - $1) / (N2 - N1) )); }
f=$(per_login "$(floor_run "$N1")" "$(floor_run "$N2")")
c=$(per_login "$(collected lua5.4 bench/instr_drive.lua core "$N1" "$BASE" "$CA")" \
              "$(collected lua5.4 bench/instr_drive.lua core "$N2" "$BASE" "$CA")")
o=$(per_login "$(collected lua5.4 bench/instr_drive.lua ours "$N1" "$BASE" "$CA")" \
              "$(collected lua5.4 bench/instr_drive.lua ours "$N2" "$BASE" "$CA")")
echo "instructions per login (callgrind, ($N2 - $N1) logins, $MODE nginx over TLS):"
awk -v f="$f" -v c="$c" -v o="$o" 'BEGIN {
  printf "  floor (C, libcurl)   %8d\n  auth0.core only      %8d   %.3fx\n  lua-auth0 (ours)     %8d   %.3fx\n", f, c, c / f, o, o / f }'
