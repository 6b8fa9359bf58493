#!/usr/bin/env bash
# The consumer's program runs and reports the round trip it performed.
set -euo pipefail
out=$(./hello_vfu)
echo "$out"
grep -qx "round trip ok: DEVICE_GET_REGION_INFO" <<<"$out"
