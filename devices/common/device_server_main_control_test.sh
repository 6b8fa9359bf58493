#!/usr/bin/env bash
# device_server_main's --control: served (socket with the asked mode) by a
# binary linked with the control plane; refused by one without, which must
# not link gRPC at all.
set -euo pipefail
source testing/shell/wait_for.sh
with=$1
without=$2
# Short: socket paths must fit in sockaddr_un (TEST_TMPDIR may not).
dir=$(mktemp -d /tmp/vfu-control-XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

"$with" --control="$dir/control.sock" --control_mode=0640 "$dir/dev.sock" 2>"$dir/log" &
pid=$!
wait_for_socket "$dir/control.sock" "$dir/log" "$pid"
mode=$(stat -c %a "$dir/control.sock")
[[ $mode == 640 ]] || { echo "FAIL: control socket mode $mode, want 640" >&2; exit 1; }
kill -TERM "$pid"
wait "$pid" || { echo "FAIL: server did not exit 0 on SIGTERM" >&2; cat "$dir/log" >&2; exit 1; }
pid=
[[ ! -e $dir/control.sock ]] || { echo "FAIL: control socket left behind" >&2; exit 1; }

status=0
"$without" --control="$dir/control.sock" "$dir/dev.sock" 2>"$dir/log2" || status=$?
[[ $status == 1 ]] || { echo "FAIL: exit $status without a control plane, want 1" >&2; exit 1; }
grep -q "no control plane" "$dir/log2" || { echo "FAIL: no reason given:" >&2; cat "$dir/log2" >&2; exit 1; }
# ldd's output is taken whole first: `ldd | grep -q` under pipefail fails
# at random when grep stops reading early (SIGPIPE).
libs_without=$(ldd "$without")
libs_with=$(ldd "$with")
if grep -q grpc <<<"$libs_without"; then
  echo "FAIL: the binary without a control plane links gRPC" >&2
  exit 1
fi
grep -q grpc <<<"$libs_with" || { echo "FAIL: the control-plane binary does not link gRPC" >&2; exit 1; }

status=0
"$with" --control_mode=9 "$dir/dev.sock" 2>/dev/null || status=$?
[[ $status == 2 ]] || { echo "FAIL: bad --control_mode exit $status, want 2" >&2; exit 1; }
echo PASS
