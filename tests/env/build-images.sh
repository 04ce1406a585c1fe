#!/usr/bin/env bash
# Build the Debian 12 systemd test images from Debian's archive (no registry is reachable), with
# the Temporal SDK the stand-ins' workers import (requirements-workers.txt) in
# /usr/local/lib/python3.11/dist-packages. Usage: build-images.sh [amd64] [arm64].
# An image built from this recipe (this script and the pins) is kept; one from another recipe is
# built again under the same name. IMAGE_REPO names other images (default
# localhost/stigmer-test-debian, which Molecule and the tests use).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
repo=${IMAGE_REPO:-localhost/stigmer-test-debian}
native=$(dpkg --print-architecture)
recipe=$(cat "$here/build-images.sh" "$here/requirements-workers.txt" | sha256sum | cut -d' ' -f1)
for arch in "${@:-$native}"; do
  image=$repo:bookworm-$arch
  if [ "$(podman image inspect --format '{{ index .Config.Labels "stigmer.recipe" }}' "$image" 2>/dev/null)" = "$recipe" ]; then
    echo "image $image present"; continue
  fi
  if [ "$arch" != "$native" ] && [ ! -e "/proc/sys/fs/binfmt_misc/qemu-aarch64" ]; then
    echo "skipping $image: this machine cannot emulate $arch" >&2; continue
  fi
  case $arch in
    amd64) wheels=manylinux2014_x86_64 ;;
    arm64) wheels=manylinux2014_aarch64 ;;
    *) echo "no wheels for $arch" >&2; exit 1 ;;
  esac
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --arch="$arch" --variant=minbase \
    --include=python3,systemd,systemd-sysv,dbus,ca-certificates,iproute2,procps \
    bookworm "$rootfs" "$mirror" >/dev/null
  # Images stay small and boot quietly: no apt lists, no getty on a console nobody reads.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  # The image's python3 (3.11) gets the pinned wheels of its architecture from this machine's pip,
  # without running anything of the image (no emulation needed).
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$rootfs/usr/local/lib/python3.11/dist-packages" --platform "$wheels" --only-binary=:all: \
    --python-version 3.11 --implementation cp --require-hashes -r "$here/requirements-workers.txt"
  tar -C "$rootfs" -c . | podman import --arch "$arch" --change 'CMD ["/sbin/init"]' \
    --change "LABEL stigmer.recipe=$recipe" - "$image" >/dev/null
  rm -rf "$rootfs"; trap - EXIT
  echo "built $image"
done
