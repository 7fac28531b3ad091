#!/usr/bin/env bash
# Install everything ryll and its test VM need on Debian 12, into ./.venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc libc6-dev   # the package and its compiled parts
  qemu-system-x86 qemu-utils                       # the test VM's SPICE server (QEMU 7.2)
  busybox-static cpio                              # the test VM's userland
  libspice-protocol-dev                            # enums.h, which tests pin our constants to
  libpixman-1-0                                    # pixman, the bit-exact composite reference
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
                                                   # spice-server's VP8/VP9/H.264 stream encoders
  tshark                                           # Wireshark's SPICE dissector: the pcap tests
  chromium                                         # a real browser: the viewer's tests (Playwright)
  ca-certificates
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
RYLL_DEV=1 .venv/bin/python -m pip install -q -e '.[test]'
# Kernel + initramfs of the test VM (downloaded with apt-get download, cached).
.venv/bin/python -m ryll.testvm build
