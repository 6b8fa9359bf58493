#!/usr/bin/env bash
# Downloads the source tarball of a Debian source package with apt, without
# touching the system's apt configuration: a private deb-src list is derived
# from the binary sources the machine already has.
#
# Usage: fetch_debian_source.sh PACKAGE FILE SHA256 OUTPUT
#   PACKAGE  Debian source package name (e.g. abseil)
#   FILE     file name of the tarball inside the source package
#   SHA256   expected checksum of FILE
#   OUTPUT   where to write the verified tarball
set -euo pipefail
package=$1 file=$2 sha256=$3 output=$4

cache_dir="${VFU_SOURCE_CACHE:-${HOME:-/tmp}/.cache/vfu-sources}"
cached="$cache_dir/$file"
if [[ -f "$cached" ]] && echo "$sha256  $cached" | sha256sum -c --quiet - 2>/dev/null; then
  cp "$cached" "$output"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial"

# deb822 sources: turn every "Types: deb" stanza into a deb-src one.
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f "$f" ]] && sed 's/^Types:.*/Types: deb-src/' "$f"
done > "$work/src.sources"
# One-line sources: "deb URI ..." becomes "deb-src URI ...".
cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
  | sed -n 's/^deb \(.*\)/deb-src \1/p' > "$work/src.list" || true

opts=(-o "Dir::Etc::SourceList=$work/src.list"
      -o "Dir::Etc::SourceParts=$work/parts"
      -o "Dir::State::Lists=$work/lists"
      -o "Debug::NoLocking=1")
mkdir -p "$work/parts"
cp "$work/src.sources" "$work/parts/src.sources"

apt-get "${opts[@]}" -qq update >"$work/update.log" 2>&1 || {
  cat "$work/update.log" >&2; echo "apt-get update for deb-src failed" >&2; exit 1; }
(cd "$work" && apt-get "${opts[@]}" -qq source --download-only "$package") >"$work/source.log" 2>&1 || {
  cat "$work/source.log" >&2; echo "apt-get source $package failed" >&2; exit 1; }

if ! echo "$sha256  $work/$file" | sha256sum -c --quiet -; then
  echo "checksum mismatch for $file" >&2
  exit 1
fi
mkdir -p "$cache_dir" && cp "$work/$file" "$cached" 2>/dev/null || true
cp "$work/$file" "$output"
