# Shell helpers for tests that start a server in the background and wait
# for it. Source it (it defines functions only); Bazel tests depend on
# //testing/shell:wait_for and source it from the runfiles root:
#
#   source testing/shell/wait_for.sh
#   "$server" --control="$dir/control.sock" 2>"$dir/log" &
#   pid=$!
#   wait_for_socket "$dir/control.sock" "$dir/log" "$pid"
#   wait_until "the client to leave" client_gone
#
# Both poll every 0.1 s until a deadline of $WAIT_FOR_SECONDS (default 60)
# seconds. On failure they print to stderr what they waited for and why
# they stopped, and return 1: under `set -e` the caller stops there.
#
# wait_for_socket PATH [LOG [PID]]
#   Returns 0 once PATH is a UNIX socket. Gives up at once if process PID
#   has exited; on failure also prints LOG (the server's stderr) if given.
#   A socket that exists may still be between bind() and listen(); servers
#   that rename a listening socket into place (the control plane does) do
#   not have that window.
#
# wait_until WHAT COMMAND [ARG...]
#   Runs COMMAND until it succeeds; returns 0 then. WHAT names the
#   condition in the failure message. COMMAND runs in this shell, so a
#   function may leave results in variables.
wait_until() {
  local what=$1
  shift
  local limit=${WAIT_FOR_SECONDS:-60}
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "FAIL: waiting for $what: not so after ${limit}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

wait_for_socket() {
  local path=$1 log=${2:-} pid=${3:-}
  local limit=${WAIT_FOR_SECONDS:-60}
  local deadline=$((SECONDS + limit))
  local why=
  while true; do
    [[ -S $path ]] && return 0
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      why="process $pid exited first"
      break
    fi
    if ((SECONDS >= deadline)); then
      why="not a socket after ${limit}s"
      break
    fi
    sleep 0.1
  done
  echo "FAIL: waiting for socket $path: $why" >&2
  if [[ -n $log ]]; then
    echo "--- $log ---" >&2
    cat -- "$log" >&2 2>/dev/null || echo "(cannot read $log)" >&2
    echo "--- end of $log ---" >&2
  fi
  return 1
}
