#!/usr/bin/env bash
# Installs the Debian packages the controller needs to run the lab: podman with runc (crun refuses
# cgroup v1 hybrid hosts), debootstrap for the lab image, and tools the tests use.
set -euo pipefail

packages=(podman runc debootstrap iproute2 tcpdump iperf3 catatonit)
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
