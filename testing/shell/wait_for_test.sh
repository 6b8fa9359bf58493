#!/usr/bin/env bash
# wait_for_socket: succeeds on a socket, fails (naming the path and showing
# the log) on a path that never becomes one or whose server exits.
# wait_until: retries its command until it succeeds or the deadline passes.
set -euo pipefail
source testing/shell/wait_for.sh
dir=$(mktemp -d /tmp/vfu-wait-XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A server that binds only once told to, after the wait has started.
/usr/bin/python3 -c '
import os, signal, socket, sys, time
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
signal.pause()
' "$dir/late.sock" "$dir/go" 2>"$dir/late.log" &
pid=$!
wait_for_socket "$dir/late.sock" "$dir/late.log" "$pid" &
waiter=$!
touch "$dir/go"
wait "$waiter" || fail "a socket that appears"
[[ -S $dir/late.sock ]] || fail "returned before the socket existed"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

# A plain file is not a socket: the deadline ends the wait.
touch "$dir/file"
echo "server log line" >"$dir/log"
status=0
WAIT_FOR_SECONDS=1 wait_for_socket "$dir/file" "$dir/log" 2>"$dir/err" || status=$?
[[ $status == 1 ]] || fail "waiting on a plain file returned $status"
grep -qF "FAIL: waiting for socket $dir/file: not a socket after 1s" "$dir/err" || fail "message: $(cat "$dir/err")"
grep -qxF "server log line" "$dir/err" || fail "log not shown: $(cat "$dir/err")"

# A server that exits: the wait stops early, long before its deadline.
/usr/bin/python3 -c 'import sys; print("bind failed", file=sys.stderr); sys.exit(1)' 2>"$dir/dead.log" &
dead=$!
wait "$dead" || true
status=0
start=$SECONDS
WAIT_FOR_SECONDS=600 wait_for_socket "$dir/never.sock" "$dir/dead.log" "$dead" 2>"$dir/err" || status=$?
[[ $status == 1 ]] || fail "waiting on a dead server returned $status"
((SECONDS - start < 60)) || fail "waited $((SECONDS - start))s for a dead server"
grep -qF "FAIL: waiting for socket $dir/never.sock: process $dead exited first" "$dir/err" || fail "message: $(cat "$dir/err")"
grep -qxF "bind failed" "$dir/err" || fail "log not shown: $(cat "$dir/err")"
# wait_until keeps the command's results (it runs in this shell) and
# retries until the command succeeds.
tries=0
third_try() { tries=$((tries + 1)); ((tries == 3)); }
wait_until "the third try" third_try || fail "wait_until gave up on a command that succeeds"
[[ $tries == 3 ]] || fail "wait_until ran the command $tries times, want 3"
status=0
WAIT_FOR_SECONDS=1 wait_until "the impossible" false 2>"$dir/err" || status=$?
[[ $status == 1 ]] || fail "wait_until on false returned $status"
grep -qxF "FAIL: waiting for the impossible: not so after 1s" "$dir/err" || fail "message: $(cat "$dir/err")"
echo PASS
