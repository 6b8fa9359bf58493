#!/usr/bin/env bash
# The README's main command (tools/run_demo.sh) runs to the end against the
# binaries built for this test and shows what it promises.
set -euo pipefail
out=$(VFU_SKIP_INSTALL=1 VFU_DEMO_BIN="$PWD" bash tools/run_demo.sh 2>&1)
echo "$out"
expect() {
  if ! grep -qF -- "$1" <<<"$out"; then
    echo "missing from the output: $1" >&2
    exit 1
  fi
}
expect "f00d:0001 System peripheral [0880]"
expect "Region 0: Memory at 00000000 (32-bit, non-prefetchable) [size=4K]"
expect "[48] MSI"
expect "MSI    1 vector"
expect "vendor_id: 0xf00d"
expect "interrupt: MSI vector 0 fired (count 1)"
expect "acknowledged: IRQ_STATUS = 0x0000"
expect "dma check fd-backed channel 0: 1048576 bytes"
expect "dma check messages channel 0: 1048576 bytes"
expect "namespace 1: 131072 LBAs of 512 bytes (64.0 MiB)"
expect "read back 4 MiB in 128 KiB commands"
expect ": verified"
expect "randread 4KiB qd32 x1 queue: "
expect "controller shut down and disabled"
expect "NAME  SOCKET"
expect "device dma_engine"
expect "device nvme"
# The DMA checks above moved 1 MiB each way through DMA messages.
if ! grep -qE '^dma_message_bytes_read +1048576$' <<<"$out"; then
  echo "vfuctl stats did not show the DMA engine's 1 MiB of message DMA" >&2
  exit 1
fi
expect "servers exited, sockets removed"
if grep "dma check" <<<"$out" | grep -qv ': ok$'; then
  echo "a DMA check failed" >&2
  exit 1
fi
