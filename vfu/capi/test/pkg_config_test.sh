#!/bin/sh
# A make/meson-style user: install the library, build a sample with plain
# cc and pkg-config outside Bazel, and run it against a client.
set -eu
install_sh=$1 library=$2 template=$3 gpio_c=$4 loop_c=$5 loop_h=$6 header=$7
headers=$(dirname "$header")
dir=$(mktemp -d /tmp/vfu-pc-XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

sh "$install_sh" "$dir/prefix" "$library" "$headers" "$template"
export PKG_CONFIG_PATH="$dir/prefix/lib/pkgconfig"
cflags=$(pkg-config --cflags libvfio-user | sed "s/ *$//")
libs=$(pkg-config --libs libvfio-user)
[ "$cflags" = "-I$dir/prefix/include/vfio-user" ] || fail "cflags: $cflags"
cp "$loop_h" "$dir/"
cc -std=gnu11 -Wall -Werror $cflags -I"$dir" -o "$dir/gpio" "$gpio_c" "$loop_c" $libs \
  -Wl,-rpath,"$dir/prefix/lib" || fail "the sample does not build against the installed library"
ldd "$dir/gpio" | grep -q "$dir/prefix/lib/libvfio-user.so.0" || fail "not linked to ours"

# Under a sanitizer configuration the library needs its runtime first.
runtime=$(ldd "$library" | sed -n 's/.*=> \(\/[^ ]*lib[at]san\.so[^ ]*\).*/\1/p' | head -n 1)

mkfifo "$dir/ready"
LD_PRELOAD="$runtime" "$dir/gpio" "$dir/gpio.sock" 1 >"$dir/ready" &
pid=$!
read -r line <"$dir/ready"
[ "$line" = "serving $dir/gpio.sock" ] || fail "server said: $line"
# A client that negotiates, reads the vendor ID and leaves (python3, no vfu).
python3 - "$dir/gpio.sock" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def call(msg_id, cmd, payload):
    s.sendall(struct.pack("<HHIII", msg_id, cmd, 16 + len(payload), 0, 0) + payload)
    head = b""
    while len(head) < 16:
        head += s.recv(16 - len(head))
    _, rcmd, size, flags, err = struct.unpack("<HHIII", head)
    body = b""
    while len(body) < size - 16:
        body += s.recv(size - 16 - len(body))
    assert rcmd == cmd and flags & 0xf == 1 and not flags & 0x20, (rcmd, flags, err)
    return body
call(1, 1, struct.pack("<HH", 0, 2) + b"{}\0")
data = call(2, 9, struct.pack("<QII", 0, 7, 4))
assert struct.unpack("<I", data[16:20])[0] == 0x0dc8494f, data
s.close()
PY
wait "$pid" || fail "the server did not exit cleanly after its one client"
pid=
echo ok
