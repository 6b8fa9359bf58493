#!/usr/bin/env bash
# grpc_guard.h fires when an Abseil built with std options (vfu's, see
# grpc_guard_abseil_options_test.cc) is on the include path, and stays quiet
# with Debian's Abseil (the one gRPC was built against).
set -euo pipefail
guard=$1
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/guard-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/vfu/control" "$work/ours/absl/base"
cp "$guard" "$work/vfu/control/grpc_guard.h"
echo '#include "vfu/control/grpc_guard.h"' >"$work/probe.cc"
# What vfu's Abseil sets (checked by grpc_guard_abseil_options_test).
printf '#define ABSL_OPTION_USE_STD_OPTIONAL 2\n' >"$work/ours/absl/base/options.h"

if ! c++ -fsyntax-only -I "$work" "$work/probe.cc" 2>"$work/quiet.err"; then
  echo "FAIL: the guard fired with Debian's Abseil:" >&2
  cat "$work/quiet.err" >&2
  exit 1
fi
if c++ -fsyntax-only -I "$work/ours" -I "$work" "$work/probe.cc" 2>"$work/fired.err"; then
  echo "FAIL: the guard did not fire with vfu's Abseil on the include path" >&2
  exit 1
fi
grep -q "vfu's own Abseil is visible" "$work/fired.err" || {
  echo "FAIL: compilation failed for another reason:" >&2
  cat "$work/fired.err" >&2
  exit 1
}
echo PASS
