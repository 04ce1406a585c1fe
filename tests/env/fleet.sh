#!/usr/bin/env bash
# Start or remove the local demo fleet: systemd containers that reach the release
# server on the host's loopback through slirp4netns (10.0.2.2), never anything else.
# Usage: fleet.sh up INVENTORY | fleet.sh down
set -euo pipefail
prefix=stigmer-demo
native=$(dpkg --print-architecture)

run_host() {  # name arch
  podman rm -f "$1" >/dev/null 2>&1 || true
  podman run -d --name "$1" --hostname "$1" --arch "$2" --systemd=always \
    --network slirp4netns:allow_host_loopback=true --label owner=stigmer-demo \
    "localhost/stigmer-test-debian:bookworm-$2" /sbin/init >/dev/null
}

case "${1:-}" in
  up)
    inventory=$2
    hosts=("$prefix-1:$native" "$prefix-2:$native")
    if podman image exists localhost/stigmer-test-debian:bookworm-arm64 && [ "$native" != arm64 ]; then
      hosts+=("$prefix-3:arm64")
    else
      hosts+=("$prefix-3:$native")
      echo "note: no arm64 image (this machine cannot emulate arm64): the third host is $native" >&2
    fi
    mkdir -p "$(dirname "$inventory")"
    {
      echo "all:"
      echo "  vars:"
      echo "    ansible_connection: containers.podman.podman"
      echo "    ansible_python_interpreter: /usr/bin/python3"
      echo "    ansible_become: false  # podman connects as root"
      echo "    # systemd here lacks CAP_SYS_ADMIN, so it cannot enforce the server's IPAddressDeny=; slirp4netns"
      echo "    # lets no other network reach these containers, so the demo accepts it (README: network filter)."
      echo "    stigmer_server_accept_unfiltered_network: true"
      echo "  hosts:"
    } > "$inventory"
    for spec in "${hosts[@]}"; do
      run_host "${spec%%:*}" "${spec##*:}"
      if [ "${spec##*:}" = "$native" ]; then
        echo "    ${spec%%:*}: {}" >> "$inventory"
      else
        # qemu-user cannot create the user namespace PrivateUsers= asks for.
        echo "    ${spec%%:*}: {stigmer_systemd_private_users: false}" >> "$inventory"
      fi
    done
    for spec in "${hosts[@]}"; do
      for _ in $(seq 1 60); do
        state=$(podman exec "${spec%%:*}" systemctl is-system-running 2>/dev/null || true)
        case "$state" in running|degraded) break ;; esac
        sleep 1
      done
      echo "${spec%%:*} (${spec##*:}): systemd $state"
    done
    ;;
  down)
    podman ps -aq --filter label=owner=stigmer-demo | xargs -r podman rm -f >/dev/null
    ;;
  *) echo "usage: $0 up INVENTORY | down" >&2; exit 2 ;;
esac
