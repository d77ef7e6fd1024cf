#!/usr/bin/env bash
# Installs the Debian packages the controller needs to run the lab: podman with runc (crun refuses
# cgroup v1 hybrid hosts), debootstrap for the lab image, tools the tests use, Python's venv module for .venv
# (Debian ships it apart from python3), openssh-client (Ansible reaches the lab's hosts over SSH, as VMs), and what
# scripts/build-artifacts.sh needs: catatonit (the pause image),
# gcc and libc6-dev (flanneld is the one cgo binary), file, ca-certificates (the Go module proxy is HTTPS), and
# etcd-client: playbooks/etcd-backup.yml and etcd-restore.yml copy its etcdctl to the control plane (the etcd image
# holds only the server, and the Go module proxy serves no etcdctl or etcdutl module).
# scripts/prerequisites.sh has checked what cannot be installed (Debian 12, root or sudo, disk) before this runs.
set -euo pipefail

# Every lab "VM" runs systemd and, on Kubernetes nodes, a kubelet and kube-proxy: each takes inotify instances
# from root's shared budget. Thirteen or more containers exhausted Debian's 128 (kube-proxy crash-looped with
# "too many open files"); 512 is what kind recommends. Raised at runtime only, never written into /etc.
if [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 512 ]; then
  echo "raising fs.inotify.max_user_instances to 512 for the lab (runtime only)"
  if [ "$(id -u)" -eq 0 ]; then sysctl -qw fs.inotify.max_user_instances=512; else sudo sysctl -qw fs.inotify.max_user_instances=512; fi
fi

packages=(podman runc debootstrap openssh-client iproute2 tcpdump iperf3 catatonit python3 python3-venv ca-certificates gcc libc6-dev file etcd-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
