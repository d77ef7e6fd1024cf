#!/bin/sh
# Runs inside the debootstrapped tree (chroot) and turns it into a lab "VM" image.
# Changing this file changes the image tag, so the image is rebuilt.
set -eu

# Lab nodes have no DNS and no route off the lab: nothing to resolve with.
printf '# Lab nodes have no DNS and no route off the lab.\n' > /etc/resolv.conf

# systemd generates a machine-id per container at first boot.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

# No consoles to log in on; nothing in a container waits for udev.
systemctl mask getty.target console-getty.service systemd-udevd.service systemd-udevd-kernel.socket \
  systemd-udevd-control.socket systemd-networkd-wait-online.service

# Services the roles enable where they are wanted, not everywhere.
systemctl disable conntrackd.service containerd.service frr.service iperf3.service keepalived.service >/dev/null 2>&1 || true

# SSH as on a VM, without a route into the lab: the controller starts sshd per connection in inetd mode inside the
# container (the ProxyCommand roles/lab/files/ssh-proxy.sh), so no daemon listens on the lab networks.
# No host key in the image: each host makes its own (the lab role, at lab-up) and the lab records it.
systemctl disable ssh.service ssh.socket >/dev/null 2>&1 || true
rm -f /etc/ssh/ssh_host_*
cat > /etc/ssh/sshd_config.d/archipelago-lab.conf <<'EOF'
# Archipelago lab: key login only, one ed25519 host key per host.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
EOF
# sshd's privilege separation directory, on the tmpfs /run of every boot.
printf 'd /run/sshd 0755 root root -\n' > /etc/tmpfiles.d/archipelago-sshd.conf

# Smaller image: package lists are stale at once (no mirror at converge time), docs are unused.
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/*
