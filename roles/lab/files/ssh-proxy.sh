#!/bin/sh
# ProxyCommand of the lab's ssh_config: ssh-proxy CONTAINER. Runs the container's own sshd in inetd mode (sshd -i)
# inside the container's namespaces (mount, network, PID, UTS, IPC, cgroup), its stdin and stdout being ssh's
# connection. The controller gets no route into the lab networks, and nothing listens on them.
# nsenter, not `podman exec -i`: podman relays an exec's stdin through conmon at about 12 MB/s on the loaded 2-core
# machine, nsenter hands sshd the pipe itself (200 MB through ssh: 15.8 s against 1.8 s, measured for
# benchmarks/README.md), and the node role copies about 900 MB of artifacts to every node.
set -eu
pid=$(podman container inspect --format '{{.State.Pid}}' "$1")
if [ -z "$pid" ] || [ "$pid" = 0 ]; then
  echo "ssh-proxy: container $1 is not running (make lab-up, or molecule create)" >&2
  exit 1
fi
exec nsenter --target "$pid" --all /usr/sbin/sshd -i
