#!/usr/bin/env bash
# Runs every test vfu has, on a fresh machine too: installs what is missing,
# then runs the suite in each pass below. Exits non-zero on the first failure.
#
# Usage: tools/test.sh [PASS...]
#   plain     bazel test //... with g++
#   clang     bazel build //... with clang, its thread-safety analysis as
#             errors (checks every ABSL_GUARDED_BY and lock annotation)
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
[[ ${#passes[@]} -gt 0 ]] || passes=(plain clang asan tsan fuzz consumer)

# Output readable in a CI log. Build actions go through a disk cache shared
# by every pass and by later runs on the same machine: the consumer
# workspace reuses the external repositories' objects (Abseil), and a second
# run of the suite compiles nothing. Test results are never taken from it:
# every test runs every time.
disk_cache=${VFU_BAZEL_DISK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vfu-bazel-disk}
bazel_flags=(--color=no --curses=no --show_progress_rate_limit=30 --disk_cache="$disk_cache")
test_flags=(--nocache_test_results)
fuzz_runs=${VFU_FUZZ_RUNS:-20000}
passed=0
failed=0

step() { printf '\n==== %s\n' "$*"; }

# Runs `bazel test` with the given arguments, echoing its output, and adds
# its per-target results to the totals.
bazel_test() {
  local log
  log=$(mktemp)
  set +e
  bazel test "${bazel_flags[@]}" "${test_flags[@]}" --test_summary=short "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  passed=$((passed + $(grep -cE '^//.* PASSED( |$)' "$log" || true)))
  failed=$((failed + $(grep -cE '^//.* (FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" || true)))
  rm -f "$log"
  return "$rc"
}

summary() { printf '\ntests: %d passed, %d failed\n' "$passed" "$failed"; }
trap summary EXIT

run_pass() {
  case "$1" in
    plain)
      step "plain: bazel test //..."
      bazel_test //...
      ;;
    clang)
      step "clang: bazel build --config=clang //... (thread-safety analysis)"
      if bazel build "${bazel_flags[@]}" --config=clang //...; then
        passed=$((passed + 1))
      else
        failed=$((failed + 1))
        return 1
      fi
      ;;
    asan)
      step "asan: bazel test --config=asan //..."
      bazel_test --config=asan //...
      ;;
    tsan)
      step "tsan: bazel test --config=tsan //..."
      bazel_test --config=tsan //...
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
        set +e
        "$bin_dir/$pkg/$name" -runs="$fuzz_runs" -seed=1 -max_len=4096 \
          "$scratch" "$root/$pkg/corpus/${name%_fuzzer}" >"$scratch.log" 2>&1
        local rc=$?
        set -e
        tail -n "$([[ $rc -eq 0 ]] && echo 2 || echo 40)" "$scratch.log"
        rm -f "$scratch.log"
        rm -rf "$scratch"
        if [[ $rc -ne 0 ]]; then
          failed=$((failed + 1))
          echo "fuzzer $t failed" >&2
          return 1
        fi
        passed=$((passed + 1))
      done
      ;;
    consumer)
      step "consumer: a workspace that depends on vfu"
      pushd testing/consumer >/dev/null
      bazel_test //...
      popd >/dev/null
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
