#!/usr/bin/env bash
# Installs the Debian packages vfu builds and tests with. Idempotent and
# silent when everything is already there. Needs root (or sudo) only when
# something is missing.
set -euo pipefail

packages=(
  bazel-bootstrap        # Bazel 4.2.3, the build system
  bazel-rules-java       # Java rules Bazel 4.2.3 registers by default
  bazel-skylib           # loaded by Abseil's BUILD files
  bazel-platforms        # constraint values Abseil's BUILD files name
  libprotobuf-dev        # protobuf runtime (proto/ control-plane messages)
  protobuf-compiler      # protoc
  libgtest-dev           # GoogleTest
  libgmock-dev           # GoogleMock
  libbenchmark-dev       # Google Benchmark (tools/ micro-benchmarks)
  libconcurrentqueue-dev # moodycamel lock-free MPMC queue (IO <-> workers)
  libreaderwriterqueue-dev # moodycamel SPSC queue
  nlohmann-json3-dev     # JSON for VERSION capabilities
  liburcu-dev            # userspace RCU (DMA lookups without atomics)
  zlib1g-dev             # CRC-32 of migration stream frames
  clang                  # libFuzzer builds and thread-safety analysis
  libclang-rt-14-dev     # clang's sanitizer and fuzzer runtimes
  g++                    # the default compiler
  dpkg-dev               # apt-get source (Abseil's source package)
  libgrpc++-dev          # gRPC C++ (the control-plane service, vfu/control/)
  protobuf-compiler-grpc # grpc_cpp_plugin and grpc_python_plugin (service stubs)
  python3-grpcio         # Python gRPC runtime (the Python control-plane test)
  python3-protobuf       # Python protobuf runtime (the same test)
  pkg-config             # vfu/capi's test of libvfio-user.pc
  python3                # vfu/capi's dlopen and raw-client tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
