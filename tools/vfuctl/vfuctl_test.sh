#!/usr/bin/env bash
# vfuctl's output against a device server's control plane: tables, JSON,
# the event feed, runtime changes and errors. Args: VFUCTL SERVER READER
set -euo pipefail
vfuctl=$1 server=$2 reader=$3
# Short: socket paths must fit in sockaddr_un (TEST_TMPDIR may not).
dir=$(mktemp -d /tmp/vfuctl-XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_line TEXT FILE: FILE has a line equal to TEXT.
expect_line() { grep -qxF -- "$1" "$2" || { cat "$2" >&2; fail "no line '$1'"; }; }

"$server" --control="$dir/control.sock" "$dir/a.sock" "$dir/b.sock" 2>"$dir/log" &
pid=$!
for _ in $(seq 600); do
  [[ -S $dir/control.sock ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; fail "server exited"; }
  sleep 0.1
done
ctl() { "$vfuctl" --control="$dir/control.sock" "$@"; }

# list: a table with one row per device.
ctl list >"$dir/list"
head -1 "$dir/list" | grep -qE '^NAME +SOCKET +CLIENT +VERSION +REGIONS +MIGRATION +UPTIME$' ||
  fail "list header: $(head -1 "$dir/list")"
[[ $(wc -l <"$dir/list") == 3 ]] || fail "list rows: $(cat "$dir/list")"
grep -qE "^memory0 +$dir/a.sock +- +- +1 +unknown +[0-9.]+s$" "$dir/list" || fail "memory0 row: $(cat "$dir/list")"

# stats after a known sequence: VERSION and 5 REGION_READs.
"$reader" "$dir/b.sock" 5
ctl stats memory1 >"$dir/stats"
expect_line "device memory1" "$dir/stats"
grep -qE '^REGION_READ +5 +0 +[0-9.]+ +<[0-9.e+]+ +<[0-9.e+]+$' "$dir/stats" || fail "REGION_READ row: $(cat "$dir/stats")"
grep -qE '^VERSION +1 +0 ' "$dir/stats" || fail "VERSION row"
grep -qE '^region_bytes_read +20$' "$dir/stats" || fail "region_bytes_read"
ctl stats memory1 --json >"$dir/stats.json"
/usr/bin/python3 - "$dir/stats.json" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
assert len(stats) == 1, stats
counts = {c["command"]: int(c["count"]) for c in stats[0]["commands"]}
assert counts == {"VERSION": 1, "REGION_READ": 5}, counts
assert int(stats[0]["region_bytes_read"]) == 20, stats[0]
PY

# Wait for the reader's detach (event #4), so the feed's order below is fixed.
ctl watch --count=4 >/dev/null

# add, list, reset, remove.
printf 'name: "stub"\nregions { index: 0 size: 8192 readable: true writable: true }\n' >"$dir/stub.textproto"
ctl add --spec "$dir/stub.textproto" "$dir/stub.sock" >"$dir/add"
expect_line "added stub at $dir/stub.sock" "$dir/add"
[[ $(stat -c %a "$dir/stub.sock") == 600 ]] || fail "added socket mode"
ctl list | grep -qE "^stub +$dir/stub.sock +- +- +1 " || fail "stub not listed"
[[ $(ctl reset stub) == "reset stub" ]] || fail "reset"
[[ $(ctl remove stub) == "removed stub" ]] || fail "remove"
[[ ! -e $dir/stub.sock ]] || fail "stub socket left behind"

# The feed, from the start: additions, the reader's visit, the stub's life.
ctl watch --count=7 >"$dir/watch"
expect_line "#1 device_added memory0: $dir/a.sock" "$dir/watch"
expect_line "#2 device_added memory1: $dir/b.sock" "$dir/watch"
grep -qE "^#3 client_attached memory1 pid [0-9]+ uid [0-9]+$" "$dir/watch" || fail "attach: $(cat "$dir/watch")"
grep -qE "^#4 client_detached memory1 pid [0-9]+ uid [0-9]+: " "$dir/watch" || fail "detach: $(cat "$dir/watch")"
expect_line "#5 device_added stub: $dir/stub.sock" "$dir/watch"
expect_line "#6 device_reset stub: reset by the control plane" "$dir/watch"
expect_line "#7 device_removed stub: $dir/stub.sock" "$dir/watch"

# Errors: the server's code and message, exit status 1.
printf 'regions { index: 0 size: 0 readable: true }\n' >"$dir/bad.textproto"
status=0; ctl add --spec "$dir/bad.textproto" "$dir/bad.sock" 2>"$dir/err" || status=$?
[[ $status == 1 ]] || fail "bad spec exit $status"
grep -q "^vfuctl: INVALID_ARGUMENT: spec: region 0" "$dir/err" || fail "bad spec: $(cat "$dir/err")"
status=0; ctl reset nope 2>"$dir/err" || status=$?
[[ $status == 1 ]] && grep -q "^vfuctl: NOT_FOUND: no device named nope" "$dir/err" || fail "unknown device"
status=0; ctl save-state memory0 "$dir/state" 2>"$dir/err" || status=$?
[[ $status == 1 ]] && grep -q "^vfuctl: UNIMPLEMENTED: SaveState" "$dir/err" || fail "save-state: $(cat "$dir/err")"
echo state >"$dir/state"
status=0; ctl load-state memory0 "$dir/state" 2>"$dir/err" || status=$?
[[ $status == 1 ]] && grep -q "^vfuctl: UNIMPLEMENTED: LoadState" "$dir/err" || fail "load-state: $(cat "$dir/err")"
status=0; "$vfuctl" list 2>/dev/null || status=$?
[[ $status == 2 ]] || fail "no control socket: exit $status"
status=0; ctl frobnicate 2>/dev/null || status=$?
[[ $status == 2 ]] || fail "unknown command: exit $status"
echo PASS
