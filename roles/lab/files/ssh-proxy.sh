#!/bin/sh
# ProxyCommand of the lab's ssh_config: ssh-proxy CONTAINER. Runs the container's own sshd in inetd mode (sshd -i)
# inside the container, its stdin and stdout being ssh's connection. The controller gets no route into the lab
# networks, and nothing listens on them.
# `podman exec -i`, not nsenter: nsenter was faster (it hands sshd the pipe itself: 200 MB through ssh in 1.8 s
# against 15.8 s, see benchmarks/README.md), but its sshd lives outside the container's cgroup. When the container
# stops, its systemd stops every process of its PID namespace (SIGSTOP, then SIGKILL); nsenter mirrors its child's
# stop onto itself and is never continued, the killed sshd is never reaped, and `podman stop` fails with "given PIDs
# did not die" (measured: the island scenario's gateway reboot test). With --no-fork the sshd outlives the container
# instead, and ControlPersist keeps talking to it. podman exec puts sshd in the container, where a stop ends it.
set -eu
exec podman exec -i "$1" /usr/sbin/sshd -i
