#!/usr/bin/env bash
# Runs python_client_test.py with Debian's python3 against a device server
# serving its control plane. Args: SERVER REGION_READER SCRIPT STUB_FILES...
set -euo pipefail
source testing/shell/wait_for.sh
server=$1 reader=$2 script=$3
shift 3
# The stubs' root: the directory holding proto/control_pb2.py.
stub=""
for f in "$@"; do
  case $f in */proto/control_pb2.py) stub=${f%/proto/control_pb2.py} ;; esac
done
[[ -n $stub ]] || { echo "FAIL: no control_pb2.py among $*" >&2; exit 1; }
# Short: socket paths must fit in sockaddr_un (TEST_TMPDIR may not).
dir=$(mktemp -d /tmp/vfu-py-XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
"$server" --control="$dir/control.sock" "$dir/a.sock" "$dir/b.sock" 2>"$dir/log" &
pid=$!
wait_for_socket "$dir/control.sock" "$dir/log" "$pid"
"$reader" "$dir/b.sock" 7
PYTHONPATH="$stub" /usr/bin/python3 "$script" "$dir" 7
