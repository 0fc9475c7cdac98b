#!/usr/bin/env bash
# Builds a stock-like ODROID-C2 image whose root file system is a real Debian arm64 system, for
# the boot test (issue 4): HardKernel's layout (MBR, FAT32 p1 at 2048 with the real boot.ini,
# ext4 p2 at 264192 with the stock root UUID), assembled by ../fixtures/assemble-image.sh as the
# test fixtures are, without loop mounts. The rootfs comes from mmdebstrap (arm64 maintainer
# scripts run under qemu-user through binfmt_misc) and its tarball is cached, keyed by the suite,
# mirror and package list, so a rerun only assembles the image.
#
# usage: make-debian-image.sh OUTPUT.img [EXTRA_TREE]
#   EXTRA_TREE  a directory copied over the rootfs before the filesystem is made: the test's
#               own additions to the image under test (check service, dummy_hcd, eth0)
# Env: BOOT_CACHE (default <repo>/.cache/boot), DEBIAN_MIRROR, DISK_SIZE_MIB (default 3072),
#   REFERENCE_DIR (default: where `npm run fetch-reference` finds or fetches HardKernel's boot files),
#   LAYOUT   c2 (default): HardKernel's C2 layout above; raspios: pi-gen's Raspberry Pi OS Lite
#            layout (FAT32 "bootfs" at 8 MiB, 512 MiB, with pi-gen's bookworm config.txt and
#            cmdline.txt, a stand-in device tree of each Pi; root and FAT by PARTUUID in cmdline.txt
#            and fstab), the same Debian rootfs in it; c4: the C2's layout with HardKernel's C4
#            boot files (boot.ini, config.ini, Image.gz, a stand-in amlogic/meson64_odroidc4.dtb)
#   NETWORK  what brings the network up, switched by files in the one cached rootfs:
#            ifupdown (default), networkmanager (NetworkManager only: no ifup, networking.service
#            disabled), none (neither: eth0 by the test's own unit, usb0 by the tool's fallback)
# Needs root (the tarball's owners and device nodes are unpacked as they are), mmdebstrap,
# qemu-user-static, binfmt-support, sfdisk, mkfs.fat, mtools, mkfs.ext4.
set -euo pipefail
# Read by assemble-image.sh: pi-gen's partition sizes (export-image/prerun.sh).
case ${LAYOUT:=c2} in
c2 | c4) ;;
raspios) BOOT_START=16384 BOOT_SECTORS=$((512 * 2048)) BOOT_LABEL=bootfs FAT_CLUSTER_SECTORS=4 ;;
*) echo "make-debian-image: LAYOUT must be c2, c4 or raspios, not $LAYOUT" >&2; exit 2 ;;
esac
# shellcheck source-path=SCRIPTDIR source=../fixtures/assemble-image.sh
source "$(dirname "$0")/../fixtures/assemble-image.sh"

[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 OUTPUT.img [EXTRA_TREE]" >&2; exit 2; }
out=$1
extra=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
reference=${REFERENCE_DIR:-$("$repo/node_modules/.bin/tsx" "$repo/test/support/fetch-reference.ts")}
cache=${BOOT_CACHE:-$repo/.cache/boot}

readonly SUITE=bookworm
readonly MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the issue names, plus: systemd-sysv for /sbin/init (overlay-init execs it); util-linux
# and mount for mountpoint/findmnt in the check service; procps for the power-cut workload;
# libdevmapper1.02.1 because Debian's dockerd (the test's Docker bundle) links it, unlike the static one;
# network-manager for the NetworkManager-only variant (NETWORK=networkmanager); btrfs-progs so the
# device can format a btrfs data image; socat for the check service's signal port.
readonly PACKAGES=(
  btrfs-progs e2fsprogs ifupdown initramfs-tools iproute2 iptables kmod libdevmapper1.02.1 linux-image-arm64
  mount network-manager openssh-server procps socat systemd systemd-sysv udev util-linux
)
readonly DISK_SECTORS=$(( ${DISK_SIZE_MIB:-3072} * 2048 ))

log() { echo "make-debian-image: $*" >&2; }

# The initrd needs only what mounts the root of QEMU's virt machine. initramfs-tools' default,
# MODULES=most, runs modprobe and modinfo for thousands of modules, which under qemu-user takes
# over ten minutes; a list takes one or two. FSTYPE: the root device does not exist in the chroot
# for the fsck hook to probe, and without it the initrd has no e2fsck and skips the root check
# that the board's initrd does at every boot. The files are ones no package owns (so dpkg asks
# nothing about them): conf.d for the settings, modules.d for the list.
essential_hook() {
  cat <<'HOOK'
mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"
printf '%s\n' MODULES=list FSTYPE=ext4 >"$1/etc/initramfs-tools/conf.d/boot-test.conf"
printf '%s\n' virtio_pci virtio_blk ext4 crc32c_generic >"$1/usr/share/initramfs-tools/modules.d/boot-test"
HOOK
}

# Every file dpkg writes costs time under emulation: no documentation or translations, and no
# kernel modules for hardware a QEMU virt machine (or the test) never has.
readonly UNUSED_MODULE_DIRS=(
  sound drivers/gpu drivers/media drivers/infiniband drivers/iio drivers/staging drivers/bluetooth
  drivers/net/wireless drivers/net/ethernet net/bluetooth net/wireless net/mac80211
)
dpkg_options() {
  local dir
  printf -- '--dpkgopt=%s\n' force-unsafe-io 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/doc/*' \
    'path-include=/usr/share/doc/*/copyright' 'path-exclude=/usr/share/locale/*'
  for dir in "${UNUSED_MODULE_DIRS[@]}"; do printf -- '--dpkgopt=path-exclude=/lib/modules/*/kernel/%s/*\n' "$dir"; done
}

# Not merged-/usr: /bin, /sbin and /lib are real directories, as on HardKernel's Ubuntu 18.04.
mapfile -t MMDEBSTRAP_OPTIONS < <(
  printf '%s\n' --arch=arm64 --variant=minbase --format=tar "--include=$(IFS=,; echo "${PACKAGES[*]}")" \
    --hook-dir=/usr/share/mmdebstrap/hooks/no-merged-usr
  dpkg_options
)
readonly MMDEBSTRAP_OPTIONS

# The tarball depends only on what mmdebstrap is asked for: any change makes a new key.
rootfs_key() {
  printf '%s\n' "$SUITE" "$MIRROR" "${MMDEBSTRAP_OPTIONS[@]}" "$(essential_hook)" | sha256sum | cut -c1-16
}

build_rootfs_tarball() { # TARBALL
  mkdir -p "$cache"
  # mmdebstrap runs the arm64 maintainer scripts through qemu-user: binfmt_misc must know arm64.
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64
  fi
  log "building the Debian $SUITE arm64 rootfs with mmdebstrap (cached as ${1##*/})"
  # --aptopt is not in the key: it changes no file. A snapshot mirror's Release (some machines here
  # use one, see /etc/apt/apt.conf.d) may be past its Valid-Until.
  mmdebstrap "${MMDEBSTRAP_OPTIONS[@]}" --essential-hook="$(essential_hook)" \
    --aptopt='Acquire::Check-Valid-Until "false"' "$SUITE" "$1.tmp" "$MIRROR" 2>&1 |
    while IFS= read -r line; do printf '%s %s\n' "$(date +%T)" "$line"; done >&2
  [[ ${PIPESTATUS[0]} == 0 ]] || { log "mmdebstrap failed"; exit 1; }
  mv "$1.tmp" "$1"
}

begin_image "$out"

tarball=$cache/rootfs-$(rootfs_key).tar
[[ -f $tarball ]] || build_rootfs_tarball "$tarball"

tree=$scratch/rootfs
mkdir "$tree"
tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball" -C "$tree"
[[ -z $extra ]] || cp -a "$extra"/. "$tree"/

without_network_manager() {
  rm -f "$tree"/etc/systemd/system/*.wants/NetworkManager*.service "$tree"/etc/systemd/system/dbus-org.freedesktop.n[mM]*.service \
    "$tree/etc/NetworkManager/system-connections/eth0.nmconnection"
}
# As on an image without ifupdown's binary: the tool must not count on it.
without_ifupdown() {
  rm -f "$tree"/sbin/ifup "$tree"/sbin/ifdown "$tree"/sbin/ifquery "$tree"/etc/systemd/system/*.wants/networking.service \
    "$tree/etc/network/interfaces.d/eth0"
}
case ${NETWORK:-ifupdown} in
ifupdown) without_network_manager ;;
networkmanager)
  without_ifupdown
  # NetworkManager ignores a keyfile others can read; git keeps no such mode.
  chmod 600 "$tree/etc/NetworkManager/system-connections/eth0.nmconnection"
  ;;
none)
  without_network_manager
  without_ifupdown
  ln -s ../boot-test-eth0.service "$tree/etc/systemd/system/multi-user.target.wants/boot-test-eth0.service"
  ;;
*) log "NETWORK must be ifupdown, networkmanager or none, not $NETWORK"; exit 2 ;;
esac
[[ ${NETWORK:-ifupdown} == none ]] || rm -f "$tree/etc/systemd/system/boot-test-eth0.service"

# As on the stock image: root logs in with the password "odroid" (serial console, for debugging),
# and fstab mounts the root by UUID and the FAT at /media/boot (pi-gen's: both by PARTUUID, the FAT
# at /boot/firmware).
# shellcheck disable=SC2016 # a crypt(3) hash, not a shell expansion
sed -i 's|^root:[^:]*:|root:$6$hardkernel$Tp9MG7DWe3iMTncD/HJcFBWHnQl2sIFM5kHPOZLeFU8P7i.3lzDy8OKjRVenZnknAbvUo6uiQV.UisN.c6j1a1:|' "$tree/etc/shadow"
readonly PI_DISK_ID=5e3da6a1 PI_REFERENCE=$reference/raspberrypi/bookworm
if [[ $LAYOUT == raspios ]]; then
  sed -e "s/BOOTDEV/PARTUUID=$PI_DISK_ID-01/" -e "s/ROOTDEV/PARTUUID=$PI_DISK_ID-02/" "$PI_REFERENCE/fstab.in" >"$tree/etc/fstab"
  mkdir -p "$tree/boot/firmware"
  echo raspberrypi >"$tree/etc/hostname"
else
  cat >"$tree/etc/fstab" <<FSTAB
UUID=$ROOT_UUID / ext4 errors=remount-ro,noatime 0 1
LABEL=BOOT /media/boot vfat defaults 0 1
FSTAB
  mkdir -p "$tree/media/boot"
  echo odroid >"$tree/etc/hostname"
fi

kernel=$(cd "$tree/boot" && printf '%s\n' vmlinuz-* | sort -V | tail -n1)
version=${kernel#vmlinuz-}

new_disk "$out" "$DISK_SECTORS"
boot_files=$scratch/boot
mkdir "$boot_files"
if [[ $LAYOUT == raspios ]]; then
  stock_table c "0x$PI_DISK_ID" | partition_disk "$out"
  # pi-gen's boot files: its config.txt, and its cmdline.txt with ROOTDEV filled in and bookworm's
  # first-boot init= appended (stage2 07-resize-init.diff). The kernel and initramfs stand where the
  # firmware loads them; the device trees are stand-ins that only name each Pi (the build
  # recognises the board by them); QEMU boots the rootfs's kernel with the patched cmdline.txt.
  cp "$PI_REFERENCE/config.txt" "$boot_files/config.txt"
  printf '%s quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n' \
    "$(sed "s/ROOTDEV/PARTUUID=$PI_DISK_ID-02/" "$PI_REFERENCE/cmdline.txt.in")" >"$boot_files/cmdline.txt"
  cp "$tree/boot/$kernel" "$boot_files/kernel8.img"
  cp "$tree/boot/initrd.img-$version" "$boot_files/initramfs8"
  for dtb in bcm2710-rpi-zero-2-w bcm2711-rpi-4-b bcm2712-rpi-5-b; do echo "stand-in for $dtb" >"$boot_files/$dtb.dtb"; done
elif [[ $LAYOUT == c4 ]]; then
  stock_table c | partition_disk "$out"
  # HardKernel's C4 boot files: boot.ini (its bootargs name the stock root UUID, as this rootfs's)
  # and config.ini, the gzipped kernel and the initrd under the names boot.ini loads, and a stand-in
  # device tree where it loads it (the build recognises the C4 by config.ini and reads no tree).
  cp "$reference/odroid-c4/boot.ini" "$reference/odroid-c4/config.ini" "$boot_files/"
  gzip -n -c "$tree/boot/$kernel" >"$boot_files/Image.gz"
  cp "$tree/boot/initrd.img-$version" "$boot_files/uInitrd"
  mkdir "$boot_files/amlogic"
  echo "stand-in for meson64_odroidc4.dtb" >"$boot_files/amlogic/meson64_odroidc4.dtb"
else
  stock_table c | partition_disk "$out"
  # FAT32 boot partition: HardKernel's boot.ini, and the kernel (Debian's arm64 vmlinuz is already
  # the uncompressed Image that U-Boot's booti takes) with the initrd beside it, as on the board.
  cp "$reference/odroid-c2/boot.ini" "$reference/odroid-c2/boot.ini.default" "$boot_files/"
  cp "$tree/boot/$kernel" "$boot_files/Image"
  cp "$tree/boot/initrd.img-$version" "$boot_files/uInitrd"
fi
write_boot_fat "$out" "$boot_files" 32

write_rootfs "$out" "$tree" $((DISK_SECTORS - ROOT_START))
check_boot_fat "$out"
check_rootfs "$out"
log "built $out: Debian $SUITE arm64, kernel $version, $LAYOUT layout"
