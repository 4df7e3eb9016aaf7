#!/usr/bin/env bash
# Runs the busted suite in every pass (Lua 5.4, LuaJIT, ASan+UBSan, and Lua 5.4 plain and
# ASan+UBSan with every client on an I/O thread; or the passes named in A0_PASSES), the C
# unit tests, luacheck and the LDoc check, then prints one closing line with the totals.
set -u
cd "$(dirname "$0")/.."
passes=${A0_PASSES:-"lua54 luajit asan iothread asan_iothread love ctest fuzz"}
# the specs whose clients run requests concurrently: the ASan pass with io_thread runs these
if [ $# -gt 0 ]; then specs=("$@"); else
  specs=(spec/async_spec.lua spec/flow_spec.lua spec/mfa_spec.lua spec/faults_spec.lua spec/chaos_spec.lua spec/secrets_spec.lua)
fi
counts=$(mktemp); : > "$counts"
export A0_COUNTS=$counts
status=0
run_pass() {   # a pass that dies before reporting counts as one failure
  local before after rc
  before=$(wc -l < "$counts")
  "$@"; rc=$?
  after=$(wc -l < "$counts")
  if [ "$rc" != 0 ]; then status=1; [ "$after" = "$before" ] && echo "0 1 0" >> "$counts"; fi
}
for p in $passes; do
  export A0_PASS=$p   # specs that run once (a Lua 5.4 program, an install) look at it
  echo "=== pass: $p"
  case $p in
    lua54)   A0_PASS=lua54 run_pass lua5.4 /usr/bin/busted --run=default "$@" ;;
    luajit)  run_pass luajit /usr/bin/busted --run=luajit "$@" ;;
    asan)    run_pass env LD_PRELOAD="$(gcc -print-file-name=libasan.so):$PWD/build/asan/nodlclose.so" \
               ASAN_OPTIONS=detect_leaks=1 \
               lua5.4 /usr/bin/busted --run=asan "$@" ;;
    iothread) run_pass lua5.4 /usr/bin/busted --run=iothread "$@" ;;
    asan_iothread)
             run_pass env LD_PRELOAD="$(gcc -print-file-name=libasan.so):$PWD/build/asan/nodlclose.so" \
               ASAN_OPTIONS=detect_leaks=1 \
               lua5.4 /usr/bin/busted --run=asan_iothread "${specs[@]}" ;;
    love)    # examples/love under Xvfb (spec/love_spec.lua runs in this pass only); with spec files
             # named, only when spec/love_spec.lua is one of them
      case " $* " in *" spec/love_spec.lua "*|"  ") A0_PASS=love run_pass lua5.4 /usr/bin/busted --run=default spec/love_spec.lua ;;
        *) echo "(spec/love_spec.lua not named)" ;; esac ;;
    ctest)   # C unit tests under ASan+UBSan; counts from their "ctest: N passed, N failed" line
      make -s ctest > build/ctest.log 2>&1; rc=$?
      cat build/ctest.log
      line=$(grep -E '^ctest: [0-9]+ passed, [0-9]+ failed' build/ctest.log | tail -n 1)
      if [ -n "$line" ]; then echo "$line" | awk '{print $2, $4, 0}' >> "$counts"; else echo "0 1 0" >> "$counts"; fi
      [ "$rc" = 0 ] || status=1 ;;
    fuzz)    # libFuzzer smoke runs: one test per target
      make -s fuzz-smoke FUZZ_SECONDS="${A0_FUZZ_SECONDS:-20}" > build/fuzz.log 2>&1; rc=$?
      cat build/fuzz.log
      ok=$(grep -cE '^fuzz_[a-z]+: [0-9]+ execs' build/fuzz.log); bad=$(grep -cE '^fuzz_[a-z]+: FAILED' build/fuzz.log)
      [ "$rc" != 0 ] && [ "$bad" = 0 ] && bad=1
      echo "$ok $bad 0" >> "$counts"
      [ "$rc" = 0 ] || status=1 ;;
    valgrind)
      printf 'int dlclose(void *h){(void)h;return 0;}\n' > build/nodlclose.c
      cc -shared -fPIC -o build/nodlclose.so build/nodlclose.c
      # --fair-sched: valgrind runs one thread at a time, and by default a thread that spins
      # through poll(0) keeps taking its lock back: a client's I/O thread would starve
      run_pass env LD_PRELOAD=$PWD/build/nodlclose.so valgrind -q --fair-sched=yes --leak-check=full \
        --errors-for-leak-kinds=definite --error-exitcode=99 lua5.4 /usr/bin/busted --run=default "$@" ;;
  esac
done
if [ -z "${A0_PASSES:-}" ]; then
  echo "=== luacheck"
  if luacheck -q lua spec examples bench; then echo "1 0 0" >> "$counts"; else echo "0 1 0" >> "$counts"; status=1; fi
  echo "=== ldoc"   # the API reference (config.ld): any LDoc warning is a failure
  rm -rf build/docs
  if ldoc -q --fatalwarnings -c config.ld . > build/ldoc.log 2>&1; then echo "1 0 0" >> "$counts"
  else grep -v '^reading configuration' build/ldoc.log; echo "0 1 0" >> "$counts"; status=1; fi
fi
read -r passed failed skipped < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$counts")
rm -f "$counts"
[ "$failed" -gt 0 ] && status=1
echo
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
