#!/usr/bin/env bash
# The demo runs to the end and shows the device's DMA copy, in both socket modes.
set -euo pipefail
for mode in "" "--twin_socket"; do
  out=$(tools/demo/demo $mode)
  echo "$out"
  grep -q 'device status done; BAR0\[0\]: "copied by the device with DMA_READ messages"' <<<"$out"
  grep -q 'REGION_READ of BAR0\[0x10\]: "hello, vfio-user"' <<<"$out"
  if [[ -n "$mode" ]]; then
    grep -q "twin socket granted" <<<"$out"
  else
    grep -q "single socket" <<<"$out"
  fi
done
