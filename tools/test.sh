#!/usr/bin/env bash
# Runs every test vfu has, on a fresh machine too: installs what is missing,
# then runs the suite in each pass below. Exits non-zero on the first failure.
#
# Usage: tools/test.sh [PASS...]
#   plain     bazel test //... with g++
#   asan      the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan      the same under ThreadSanitizer
#   fuzz      libFuzzer targets (clang), a fixed number of runs each
#   consumer  the example workspace that depends on vfu (testing/consumer)
# With no PASS, runs all of them in that order.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash tools/install_deps.sh

passes=("$@")
[[ ${#passes[@]} -gt 0 ]] || passes=(plain asan tsan fuzz consumer)

# Fewer jobs than Bazel's default keeps a 2-core machine responsive; CI and
# interactive runs both pass these.
bazel_flags=(--color=no --curses=no --show_progress_rate_limit=30)
fuzz_runs=${VFU_FUZZ_RUNS:-20000}

step() { printf '\n==== %s\n' "$*"; }

run_pass() {
  case "$1" in
    plain)
      step "plain: bazel test //..."
      bazel test "${bazel_flags[@]}" //...
      ;;
    asan)
      step "asan: bazel test --config=asan //..."
      bazel test "${bazel_flags[@]}" --config=asan //...
      ;;
    tsan)
      step "tsan: bazel test --config=tsan //..."
      bazel test "${bazel_flags[@]}" --config=tsan //...
      ;;
    fuzz)
      step "fuzz: libFuzzer targets, $fuzz_runs runs each"
      local targets
      targets=$(bazel query 'attr(tags, "fuzzer", kind(cc_binary, //...))' 2>/dev/null)
      [[ -n "$targets" ]] || { echo "no fuzz targets found" >&2; return 1; }
      # shellcheck disable=SC2086
      bazel build "${bazel_flags[@]}" --config=fuzz $targets
      local bin_dir
      bin_dir=$(bazel info "${bazel_flags[@]}" --config=fuzz bazel-bin 2>/dev/null)
      for t in $targets; do
        local pkg=${t#//}; pkg=${pkg%%:*}
        local name=${t##*:}
        local scratch
        scratch=$(mktemp -d)
        echo "-- $t"
        "$bin_dir/$pkg/$name" -runs="$fuzz_runs" -seed=1 -max_len=4096 \
          "$scratch" "$root/$pkg/corpus/${name%_fuzzer}" 2>&1 | tail -n 3
        local rc=${PIPESTATUS[0]}
        rm -rf "$scratch"
        [[ $rc -eq 0 ]] || { echo "fuzzer $t failed" >&2; return 1; }
      done
      ;;
    consumer)
      step "consumer: a workspace that depends on vfu"
      (cd testing/consumer && bazel test "${bazel_flags[@]}" //...)
      ;;
    *)
      echo "unknown pass: $1" >&2
      return 2
      ;;
  esac
}

for p in "${passes[@]}"; do
  run_pass "$p"
done
step "all passes succeeded: ${passes[*]}"
