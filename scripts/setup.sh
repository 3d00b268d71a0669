#!/usr/bin/env bash
# Installs what seal-webgpu needs on a fresh Debian/Ubuntu machine: a Vulkan driver (Mesa's
# software lavapipe when there is no GPU) and the npm dependencies. Safe to run twice.
# --browser also installs Debian's chromium, which the browser test (test/web/) drives headless.
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan_device() {
  # Dawn needs a Vulkan ICD; Debian bookworm's own lavapipe (Mesa 22.3) is too old for Dawn.
  compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null || compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null || return 1
  [ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libvulkan.so.1 ] || ldconfig -p 2>/dev/null | grep -q libvulkan.so.1 || return 1
  local mesa
  mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  if [ -n "$mesa" ] && [ "${mesa%%.*}" -lt 23 ] 2>/dev/null; then return 1; fi
  return 0
}

if [ "$(uname -s)" = Linux ] && ! have_vulkan_device; then
  echo "setup: no usable Vulkan driver found; installing Mesa lavapipe (software Vulkan)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  . /etc/os-release
  if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

if [ "${1:-}" = --browser ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Debian's chromium for the browser test"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi
