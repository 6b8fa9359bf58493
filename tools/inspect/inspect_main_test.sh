#!/usr/bin/env bash
# The inspect binary as a user runs it: exit codes, --help, error messages,
# and each subcommand against the test device served by another process.
set -euo pipefail
source testing/shell/wait_for.sh

inspect=tools/inspect/inspect
serve=tools/inspect/serve_test_device
dir=$(mktemp -d /tmp/vfu-inspect-XXXXXX)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs inspect with the given arguments; sets $rc, $out and $err.
run() {
  set +e
  "$inspect" "$@" >"$dir/out" 2>"$dir/err"
  rc=$?
  set -e
  out=$(cat "$dir/out")
  err=$(cat "$dir/err")
}

expect_rc() { [[ $rc -eq $1 ]] || fail "inspect $2: exit $rc, want $1; stderr: $err"; }
expect_out() { grep -qF -- "$1" <<<"$out" || fail "output lacks '$1':"$'\n'"$out"; }
expect_err() { grep -qF -- "$1" <<<"$err" || fail "stderr lacks '$1': $err"; }

run --help
expect_rc 0 --help
expect_out "inspect read SOCKET REGION OFFSET SIZE"

run
expect_rc 2 "(no arguments)"
expect_err "no SOCKET given"

run read "$dir/x.sock" 0 zero 4
expect_rc 2 "read with a bad offset"
expect_err 'OFFSET "zero" is not a number'

run "$dir/absent.sock"
expect_rc 1 "on a missing socket"
expect_err "connecting to $dir/absent.sock"

# The server says when it listens; reading that line is the wait.
mkfifo "$dir/ready"
"$serve" "$dir/dev.sock" >"$dir/ready" &
server_pid=$!
read -r line <"$dir/ready"
[[ "$line" == "serving $dir/dev.sock" ]] || fail "server said: $line"

# Each run is one client; the server notices a client has left a moment
# after it exits, so a connection refused for that is retried until a
# deadline (the refusal itself is the signal). run's $rc, $out and $err
# are the last try's.
not_refused() { run "$@"; [[ $rc -ne 1 ]] || ! grep -q "another client" <<<"$err"; }
run_served() { wait_until "the server to take inspect $*" not_refused "$@"; }

run_served "$dir/dev.sock"
expect_rc 0 "listing"
expect_out "1b36:0010 Non-volatile memory controller (NVM Express) [0108] (prog-if 02) (rev 02)"
expect_out "Region 2: Memory at 0000000000000000 (64-bit, prefetchable) [size=64K]"
expect_out "Device Serial Number 01-02-03-04-05-06-07-08"

run_served --spec "$dir/dev.sock"
expect_rc 0 "--spec"
expect_out "vendor_id: 0x1b36"
expect_out "serial_number: 0x102030405060708"

run_served write "$dir/dev.sock" 2 0x20 "ca fe"
expect_rc 0 "write"
expect_out "wrote 2 bytes to region 2 at 0x20"

run_served read "$dir/dev.sock" 2 0x20 2
expect_rc 0 "read"
expect_out "00000020: ca fe"

run_served read "$dir/dev.sock" 4 0xff 2
expect_rc 1 "read past the region"
expect_err "OUT_OF_RANGE"

echo PASS
