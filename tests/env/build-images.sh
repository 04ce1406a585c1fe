#!/usr/bin/env bash
# Build the Debian 12 systemd test images from Debian's archive (no registry
# is reachable). Usage: build-images.sh [amd64] [arm64]. An image that exists is kept.
set -euo pipefail
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
native=$(dpkg --print-architecture)
for arch in "${@:-$native}"; do
  image=localhost/stigmer-test-debian:bookworm-$arch
  if podman image exists "$image"; then
    echo "image $image present"; continue
  fi
  if [ "$arch" != "$native" ] && [ ! -e "/proc/sys/fs/binfmt_misc/qemu-aarch64" ]; then
    echo "skipping $image: this machine cannot emulate $arch" >&2; continue
  fi
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --arch="$arch" --variant=minbase \
    --include=python3,systemd,systemd-sysv,dbus,ca-certificates,iproute2,procps \
    bookworm "$rootfs" "$mirror" >/dev/null
  # Images stay small and boot quietly: no apt lists, no getty on a console nobody reads.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | podman import --arch "$arch" --change 'CMD ["/sbin/init"]' - "$image" >/dev/null
  rm -rf "$rootfs"; trap - EXIT
  echo "built $image"
done
