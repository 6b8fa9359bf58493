#!/usr/bin/env bash
# The main job: serves a sample vfio-user device and drives it with the vfu
# client, printing each step. Installs missing packages first.
# Extra arguments go to the demo (e.g. --twin_socket).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
bazel run --color=no --curses=no --ui_event_filters=-info,-stdout,-stderr --noshow_progress \
  //tools/demo -- "$@"
