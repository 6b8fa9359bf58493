#!/bin/sh
# Installs libvfio-user.so.0, its headers and libvfio-user.pc under PREFIX,
# laid out as libvfio-user installs them, so meson/make projects (SPDK) find
# them with pkg-config:
#
#   bazel build //vfu/capi:libvfio-user.so.0
#   vfu/capi/install.sh /usr/local
#   PKG_CONFIG_PATH=/usr/local/lib/pkgconfig pkg-config --cflags --libs libvfio-user
#
# Usage: install.sh PREFIX [LIBRARY HEADERS_DIR PC_TEMPLATE]; the optional
# arguments default to the Bazel outputs and sources of this workspace.
set -eu
prefix=$1
here=$(dirname "$0")
library=${2:-bazel-bin/vfu/capi/libvfio-user.so.0}
headers=${3:-$here/include}
template=${4:-$here/libvfio-user.pc.in}
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include/vfio-user/pci_caps"
install -m 0755 "$library" "$prefix/lib/libvfio-user.so.0"
ln -sf libvfio-user.so.0 "$prefix/lib/libvfio-user.so"
for header in libvfio-user.h vfio-user.h pci_defs.h; do
  install -m 0644 "$headers/$header" "$prefix/include/vfio-user/$header"
done
for header in "$headers"/pci_caps/*.h; do
  install -m 0644 "$header" "$prefix/include/vfio-user/pci_caps/"
done
sed "s|@PREFIX@|$prefix|" "$template" >"$prefix/lib/pkgconfig/libvfio-user.pc"
