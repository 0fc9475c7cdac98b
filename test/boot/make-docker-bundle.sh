#!/usr/bin/env bash
# Assembles a Docker bundle in the layout of Docker's static docker-<version>.tgz for aarch64
# (docker/dockerd, docker/containerd, ...) from Debian's arm64 docker.io, containerd, runc and
# tini packages, so the boot test installs real binaries through the docker step's own path.
# Debian's binaries are linked against the image's libc (and runc against libseccomp), which
# the Debian rootfs under test has. Also leaves busybox-static's arm64 binary beside it, for
# the test's tiny container image, and trixie's arm64 docker-buildx plugin (bookworm has none; a
# static binary, it needs only libc) for the docker client at the guest's host end of the USB
# link, where the host kit's setup-buildx.sh and doctor.sh run. All are cached, keyed by the
# suites, mirror and package lists.
#
# usage: make-docker-bundle.sh   prints the paths of the bundle, of busybox and of docker-buildx, one per line
# Env: BOOT_CACHE (default <repo>/.cache/boot), DEBIAN_MIRROR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${BOOT_CACHE:-$repo/.cache/boot}
readonly SUITE=bookworm
readonly MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly PACKAGES=(busybox-static containerd docker.io runc tini)
readonly BUILDX_SUITE=trixie BUILDX_PACKAGE=docker-buildx BUILDX_PATH=usr/libexec/docker/cli-plugins/docker-buildx
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
buildx=$cache/docker-buildx-$(printf '%s\n' "$BUILDX_SUITE" "$MIRROR" arm64 "$BUILDX_PACKAGE" "$BUILDX_PATH" | sha256sum | cut -c1-16)

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
  rm -rf "$tmp"
  trap - EXIT
fi
if [[ ! -f $buildx ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "make-docker-bundle: extracting Debian $BUILDX_SUITE arm64 $BUILDX_PACKAGE" >&2
  mmdebstrap --quiet --arch=arm64 --variant=extract --include="$BUILDX_PACKAGE" \
    --aptopt='Acquire::Check-Valid-Until "false"' "$BUILDX_SUITE" "$tmp/root" "$MIRROR"
  install -m 0755 "$tmp/root/$BUILDX_PATH" "$buildx.tmp"
  mv "$buildx.tmp" "$buildx"
  rm -rf "$tmp"
  trap - EXIT
fi
printf '%s\n' "$bundle" "$busybox" "$buildx"
