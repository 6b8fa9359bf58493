#!/bin/sh
# Runs dlopen_test.py with the system python3 against the built library.
# Under ASan the library needs its runtime loaded first (and the host's own
# leaks are not ours to report). A TSan runtime cannot be preloaded into
# python3 (it crashes at start), so under TSan only the exported symbols are
# checked, by the script's first half.
set -eu
runtime=$(ldd "$2" | sed -n 's/.*=> \(\/[^ ]*lib[at]san\.so[^ ]*\).*/\1/p' | head -n 1)
case "$runtime" in
  *libtsan*)
    exec python3 "$1" "$2" --exports-only ;;
  ?*)
    export LD_PRELOAD="$runtime"
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" ;;
esac
exec python3 "$1" "$2"
