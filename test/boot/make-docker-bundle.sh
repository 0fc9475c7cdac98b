#!/usr/bin/env bash
# Assembles a Docker bundle in the layout of Docker's static docker-<version>.tgz for aarch64
# (docker/dockerd, docker/containerd, ...) from Debian's arm64 docker.io, containerd, runc and
# tini packages, so the boot test installs real binaries through the docker step's own path.
# Debian's binaries are linked against the image's libc (and runc against libseccomp), which
# the Debian rootfs under test has. Also leaves busybox-static's arm64 binary beside it, for
# the test's tiny container image. Both are cached, keyed by the suite, mirror and package list.
#
# usage: make-docker-bundle.sh   prints the paths of the bundle and of busybox, one per line
# Env: BOOT_CACHE (default <repo>/.cache/boot), DEBIAN_MIRROR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${BOOT_CACHE:-$repo/.cache/boot}
readonly SUITE=bookworm
readonly MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly PACKAGES=(busybox-static containerd docker.io runc tini)
# Bundle name -> path in the extracted packages. docker-init is tini, as in Docker's bundle.
readonly BINARIES=(
  dockerd=usr/sbin/dockerd
  docker=usr/bin/docker
  docker-proxy=usr/sbin/docker-proxy
  docker-init=usr/bin/tini-static
  containerd=usr/bin/containerd
  containerd-shim-runc-v2=usr/bin/containerd-shim-runc-v2
  ctr=usr/bin/ctr
  runc=usr/sbin/runc
)

key=$(printf '%s\n' "$SUITE" "$MIRROR" arm64 "${PACKAGES[@]}" "${BINARIES[@]}" | sha256sum | cut -c1-16)
bundle=$cache/docker-debian-$key.tgz
busybox=$cache/busybox-$key

if [[ ! -f $bundle || ! -f $busybox ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$cache"
  echo "make-docker-bundle: extracting Debian $SUITE arm64 ${PACKAGES[*]}" >&2
  # extract: the packages' files unpacked, nothing configured, so nothing runs under emulation.
  # Not in the key: it changes no file. A snapshot mirror's Release may be past its Valid-Until.
  mmdebstrap --quiet --arch=arm64 --variant=extract --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --aptopt='Acquire::Check-Valid-Until "false"' "$SUITE" "$tmp/root" "$MIRROR"
  mkdir "$tmp/docker"
  for entry in "${BINARIES[@]}"; do
    name=${entry%%=*}
    install -m 0755 "$tmp/root/${entry#*=}" "$tmp/docker/$name"
  done
  tar -C "$tmp" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -czf "$bundle.tmp" docker
  install -m 0755 "$tmp/root/bin/busybox" "$busybox"
  mv "$bundle.tmp" "$bundle"
fi
printf '%s\n' "$bundle" "$busybox"
