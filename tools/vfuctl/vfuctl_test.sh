#!/usr/bin/env bash
# vfuctl's output against a device server's control plane: tables, JSON,
# the event feed, runtime changes, device state and errors.
# Args: VFUCTL SERVER READER GPIO_SERVER GPIO_TOGGLE
set -euo pipefail
source testing/shell/wait_for.sh
vfuctl=$1 server=$2 reader=$3 gpio=$4 toggle=$5
# Short: socket paths must fit in sockaddr_un (TEST_TMPDIR may not).
dir=$(mktemp -d /tmp/vfuctl-XXXXXX)
pid= gpio_pids=()
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  for p in "${gpio_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_line TEXT FILE: FILE has a line equal to TEXT.
expect_line() { grep -qxF -- "$1" "$2" || { cat "$2" >&2; fail "no line '$1'"; }; }

"$server" --control="$dir/control.sock" "$dir/a.sock" "$dir/b.sock" 2>"$dir/log" &
pid=$!
wait_for_socket "$dir/control.sock" "$dir/log" "$pid"
ctl() { "$vfuctl" --control="$dir/control.sock" "$@"; }

# list: a table with one row per device.
ctl list >"$dir/list"
head -1 "$dir/list" | grep -qE '^NAME +SOCKET +CLIENT +VERSION +REGIONS +MIGRATION +UPTIME$' ||
  fail "list header: $(head -1 "$dir/list")"
[[ $(wc -l <"$dir/list") == 3 ]] || fail "list rows: $(cat "$dir/list")"
grep -qE "^memory0 +$dir/a.sock +- +- +1 +not_supported +[0-9.]+s$" "$dir/list" || fail "memory0 row: $(cat "$dir/list")"

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
[[ $status == 1 ]] && grep -q "^vfuctl: FAILED_PRECONDITION: memory0: the device does not support migration" "$dir/err" || fail "save-state: $(cat "$dir/err")"
echo state >"$dir/state"
status=0; ctl load-state memory0 "$dir/state" 2>"$dir/err" || status=$?
[[ $status == 1 ]] && grep -q "^vfuctl: FAILED_PRECONDITION: memory0: the device does not support migration" "$dir/err" || fail "load-state: $(cat "$dir/err")"
status=0; ctl migration-state memory0 sideways 2>/dev/null || status=$?
[[ $status == 2 ]] || fail "unknown migration state: exit $status"
status=0; "$vfuctl" list 2>/dev/null || status=$?
[[ $status == 2 ]] || fail "no control socket: exit $status"
status=0; ctl frobnicate 2>/dev/null || status=$?
[[ $status == 2 ]] || fail "unknown command: exit $status"

# Device state: GPIO registers set through vfio-user on one server, saved,
# loaded into another server's device and read back there.
start_gpio() {  # NAME: serves $dir/NAME.sock, control socket $dir/NAME.ctl
  "$gpio" --control="$dir/$1.ctl" "$dir/$1.sock" 2>"$dir/$1.log" &
  gpio_pids+=($!)
  wait_for_socket "$dir/$1.ctl" "$dir/$1.log" "${gpio_pids[-1]}" || fail "$1 did not start"
}
start_gpio src
start_gpio dst
gctl() { local which=$1; shift; "$vfuctl" --control="$dir/$which.ctl" "$@"; }
# idle NAME: the server lists NAME's device without a client.
idle() { grep -qE "^[^ ]+ +$dir/$1.sock +- +- " <<<"$(gctl "$1" list)"; }
# wait_idle NAME: until the server has seen NAME's last client leave.
wait_idle() { wait_until "$1's client to leave" idle "$1" || fail "$1's client did not leave"; }
# Leaves IRQ_ENABLE and OUTPUT with line 5's bit, CONTROL in loopback.
"$toggle" --line=5 "$dir/src.sock" >"$dir/toggle" 2>&1 || { cat "$dir/toggle" >&2; fail "gpio_toggle"; }
wait_idle src
# One toggle: one MSI delivered.
gctl src stats "$dir/src.sock" >"$dir/src.stats"
grep -qE '^interrupts_raised +1$' "$dir/src.stats" || fail "interrupts_raised: $(cat "$dir/src.stats")"
grep -qE '^interrupts_pending +0$' "$dir/src.stats" || fail "interrupts_pending: $(cat "$dir/src.stats")"
gctl src list | grep -qE "^[^ ]+ +$dir/src.sock +- +- +[0-9]+ +running " || fail "src list: $(gctl src list)"
gctl src save-state "$dir/src.sock" "$dir/gpio.state" >"$dir/saved"
grep -qE "^saved [1-9][0-9]* bytes of $dir/src.sock$" "$dir/saved" || fail "saved: $(cat "$dir/saved")"
size=$(stat -c %s "$dir/gpio.state")
[[ $(gctl dst load-state "$dir/dst.sock" "$dir/gpio.state") == "loaded $size bytes into $dir/dst.sock" ]] ||
  fail "load-state"
# dst's feed: added, then the load's walk through RESUMING and back.
gctl dst watch --count=5 | sed -E 's/^#[0-9]+ ([a-z_]+) [^ :]+/\1/' >"$dir/dst.watch"
printf '%s\n' "device_added: $dir/dst.sock" "migration_state_changed: RUNNING -> STOP" \
  "migration_state_changed: STOP -> RESUMING" "migration_state_changed: RESUMING -> STOP" \
  "migration_state_changed: STOP -> RUNNING" | diff - "$dir/dst.watch" || fail "dst feed"
[[ $("$reader" "$dir/dst.sock" 1 0x14) == 0x00000020 ]] || fail "IRQ_ENABLE after load"
[[ $("$reader" "$dir/dst.sock" 1 0x0c) == 0x00000020 ]] || fail "OUTPUT after load"
[[ $("$reader" "$dir/dst.sock" 1 0x1c) == 0x00000001 ]] || fail "CONTROL after load"
wait_idle dst
# A stream the device rejects leaves it RESUMING; a reset recovers it.
status=0; gctl dst load-state "$dir/dst.sock" "$dir/state" 2>"$dir/err" || status=$?
[[ $status == 1 ]] && ! grep -q FAILED_PRECONDITION "$dir/err" || fail "garbage state: $(cat "$dir/err")"
gctl dst list | grep -qE "^[^ ]+ +$dir/dst.sock +- +- +[0-9]+ +resuming " || fail "dst list: $(gctl dst list)"
gctl dst reset "$dir/dst.sock" >/dev/null
gctl dst list | grep -qE "^[^ ]+ +$dir/dst.sock +- +- +[0-9]+ +running " || fail "dst after reset"
# migration-state walks the state machine.
[[ $(gctl src migration-state "$dir/src.sock" stop) == "$dir/src.sock stop" ]] || fail "set stop"
gctl src list | grep -qE "^[^ ]+ +$dir/src.sock +- +- +[0-9]+ +stop " || fail "src list after stop"
status=0; gctl src migration-state "$dir/src.sock" running_p2p 2>"$dir/err" || status=$?
[[ $status == 1 ]] && grep -q "^vfuctl: INVALID_ARGUMENT" "$dir/err" || fail "running_p2p: $(cat "$dir/err")"
[[ $(gctl src migration-state "$dir/src.sock" running) == "$dir/src.sock running" ]] || fail "set running"
echo PASS
