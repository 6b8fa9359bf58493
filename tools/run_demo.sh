#!/usr/bin/env bash
# The main job. Starts the sample device servers (devices/gpio,
# devices/dma_engine and devices/nvme), inspects the GPIO device the way
# lspci -vvv would, toggles a GPIO line through vfio-user and shows its
# interrupt arriving, has the DMA engine copy client memory and checks the
# bytes, drives the NVMe controller as a guest would (write a pattern, read
# it back, verify, print IOPS), and asks the servers' control planes what
# they served (vfuctl). Installs
# missing packages first; builds with Bazel.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -n "${VFU_SKIP_INSTALL:-}" ]] || bash tools/install_deps.sh

quiet=(--color=no --curses=no --ui_event_filters=-info,-stdout,-stderr --noshow_progress)
targets=(//devices/gpio //devices/gpio:gpio_toggle //devices/dma_engine //tools/inspect
  //devices/nvme //tools/nvme //tools/vfuctl)
if [[ -z "${VFU_DEMO_BIN:-}" ]]; then
  bazel build "${quiet[@]}" "${targets[@]}"
  VFU_DEMO_BIN=$(bazel info bazel-bin 2>/dev/null)
fi
bin=$VFU_DEMO_BIN

dir=$(mktemp -d /tmp/vfu-demo-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# start_server NAME BINARY SOCKET [FLAGS...]: runs the server in the
# background with its log relayed (prefixed) to stderr and its control plane
# at $dir/NAME.control, and returns once it serves SOCKET.
start_server() {
  local name=$1 binary=$2 socket=$3
  mkfifo "$dir/$name.log" "$dir/$name.ready"
  "$binary" --control="$dir/$name.control" "${@:4}" "$socket" 2>"$dir/$name.log" &
  pids+=($!)
  {
    local served=0
    while IFS= read -r line; do
      echo "  [$name] $line" >&2
      # The control plane starts after the devices: wait for both.
      if [[ $served == 0 && $line == *"serving 1 device(s) at $socket"* ]]; then
        served=1
        echo ready >"$dir/$name.ready"
      fi
    done <"$dir/$name.log"
    # The server exited without serving: tell the waiter.
    if [[ $served == 0 ]]; then echo exited >"$dir/$name.ready"; fi
  } &
  local state
  read -r state <"$dir/$name.ready"
  if [[ $state != ready ]]; then
    echo "$name server failed to start" >&2
    exit 1
  fi
}

step() { printf '\n==== %s\n' "$*"; }

gpio_socket=$dir/gpio.sock
dma_socket=$dir/dma.sock

step "start the GPIO device server: gpio $gpio_socket"
start_server gpio "$bin/devices/gpio/gpio" "$gpio_socket"

step "inspect $gpio_socket"
"$bin/tools/inspect/inspect" "$gpio_socket"

step "inspect --spec $gpio_socket"
"$bin/tools/inspect/inspect" --spec "$gpio_socket"

step "gpio_toggle --line=3 $gpio_socket"
"$bin/devices/gpio/gpio_toggle" --line=3 "$gpio_socket"

step "start the DMA engine server: dma_engine $dma_socket"
start_server dma_engine "$bin/devices/dma_engine/dma_engine" "$dma_socket"

step "inspect dma-check $dma_socket fd (client memory shared with an fd)"
"$bin/tools/inspect/inspect" dma-check "$dma_socket" fd

step "inspect dma-check $dma_socket messages (fd-less memory: DMA_READ/DMA_WRITE messages)"
"$bin/tools/inspect/inspect" dma-check "$dma_socket" messages

nvme_socket=$dir/nvme.sock
step "start the NVMe controller on a 64 MiB image: nvme --namespace=$dir/disk.img $nvme_socket"
truncate -s 64M "$dir/disk.img"
start_server nvme "$bin/devices/nvme/nvme" "$nvme_socket" --namespace="$dir/disk.img"

step "nvme --mode=demo $nvme_socket (the guest's side: enable, identify, write, read back, IOPS)"
"$bin/tools/nvme/nvme" --mode=demo "$nvme_socket"

step "vfuctl list (each server's control plane, $dir/*.control)"
for name in gpio dma_engine nvme; do
  "$bin/tools/vfuctl/vfuctl" --control="$dir/$name.control" list
done

step "vfuctl stats: what the clients above made each device do"
"$bin/tools/vfuctl/vfuctl" --control="$dir/gpio.control" stats
for name in dma_engine nvme; do
  echo
  "$bin/tools/vfuctl/vfuctl" --control="$dir/$name.control" stats
done

step "stop the servers (SIGTERM)"
kill -TERM "${pids[0]}"
kill -TERM "${pids[1]}"
kill -TERM "${pids[2]}"
wait "${pids[0]}" "${pids[1]}" "${pids[2]}"
for socket in "$gpio_socket" "$dma_socket" "$nvme_socket"; do
  if [[ -e $socket ]]; then echo "$socket still exists" >&2; exit 1; fi
done
echo "servers exited, sockets removed"
