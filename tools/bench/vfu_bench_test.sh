#!/bin/bash
# vfu_bench runs whole with small parameters: both servers, both client
# modes, every figure and the C API's comparison rows present. The figures'
# values are the benchmark's to judge; this checks that the tool works (the
# bench itself checks that the devices saw every access it made).
set -euo pipefail

bench="$1"
out="${TEST_TMPDIR:-/tmp}/vfu_bench.csv"

"$bench" --server=both --mode=both --dma=false --rounds=1 --iterations=300 \
  --messages=3000 --pass_seconds=0.3 --csv >"$out"

fail() {
  echo "FAIL: $*" >&2
  cat "$out" >&2
  exit 1
}

for mode in spin sleep spin/capi sleep/capi spin/capi:vfu sleep/capi:vfu; do
  grep -q "^${mode}," "$out" || fail "no rows of mode ${mode}"
done
grep -q "^sleep/capi,\"(a') raw ping-pong" "$out" || fail "no poll-waiting floor row"
[[ $(grep -c "of the threaded server" "$out") -eq 4 ]] || fail "expected 4 comparison rows"
echo PASS
