#!/usr/bin/env bash
# Checks what `make setup` cannot install itself, before anything long starts. The first prerequisite that is not
# met stops the run with one line: what is missing and how to fix it. On success, one line says what was found.
#
# Checked: Debian 12 with apt; Python >= 3.11 when a python3 is installed (Debian's, 3.11, is installed otherwise);
# root or sudo without a password prompt; free disk where the cache lives, and write access to it; an inotify limit that is high enough
# or can be raised. Go is not a prerequisite: scripts/go-toolchain.py fetches a pinned Go when none fits.
#
# Environment (defaults in brackets):
#   ARCHIPELAGO_CACHE [/var/cache/archipelago]   where the Go caches, the toolchain and the artifacts go
#   ARCHIPELAGO_MIN_FREE_GIB [20]                free space needed there (a cold build takes about 10 GB)
#   ARCHIPELAGO_OS_RELEASE [/etc/os-release]     the os-release file read (the tests point it elsewhere)
set -euo pipefail

cache=${ARCHIPELAGO_CACHE:-/var/cache/archipelago}
min_free_gib=${ARCHIPELAGO_MIN_FREE_GIB:-20}
os_release=${ARCHIPELAGO_OS_RELEASE:-/etc/os-release}
python_minimum=3.11
inotify_minimum=512            # what scripts/setup-host.sh raises fs.inotify.max_user_instances to

missing() { printf 'prerequisite missing: %s\n' "$*" >&2; exit 1; }

# Debian 12 with apt: the package names and versions in scripts/setup-host.sh are bookworm's.
os_id=$(. "$os_release" 2>/dev/null && printf '%s %s' "${ID:-}" "${VERSION_ID:-}") || os_id=""
os_name=$(. "$os_release" 2>/dev/null && printf '%s' "${PRETTY_NAME:-}") || os_name=""
[[ $os_id == "debian 12" ]] ||
    missing "Debian 12 (bookworm): this is ${os_name:-an unknown system ($os_release unreadable)}; run make setup on Debian 12"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
    missing "apt-get/dpkg-query: not found on PATH; restore Debian's apt (PATH=$PATH)"

# Root, or sudo that will not stop at a password prompt halfway through.
if [[ $(id -u) -eq 0 ]]; then
    privilege="root"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    privilege="sudo"
else
    missing "root: $(id -un) is not root and cannot sudo without a password; run 'sudo make setup' (or 'sudo -v' first)"
fi

# Python: Debian 12's python3 is 3.11; an older one first on PATH would build an unusable virtualenv.
if command -v python3 >/dev/null; then
    python_version=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) ||
        missing "a working python3: $(command -v python3) does not run; apt-get install python3"
    if [[ $(printf '%s\n' "$python_minimum" "$python_version" | sort -V | head -n1) != "$python_minimum" ]]; then
        missing "Python >= $python_minimum: $(command -v python3) is $python_version; put Debian 12's /usr/bin/python3 (3.11) first on PATH"
    fi
    python="Python $python_version"
else
    python="no python3 (setup installs Debian's)"
fi

# Free disk where the cache lives (or will live: its nearest existing parent).
dir=$cache
while [[ ! -d $dir ]]; do dir=$(dirname "$dir"); done
free_kib=$(df -Pk "$dir" | awk 'NR == 2 {print $4}')
[[ $free_kib =~ ^[0-9]+$ ]] || missing "free disk: cannot read free space of $dir from df"
free_gib=$((free_kib / 1024 / 1024))
((free_gib >= min_free_gib)) ||
    missing "free disk: $free_gib GiB free at $dir (for ARCHIPELAGO_CACHE=$cache), $min_free_gib GiB needed; free space or point ARCHIPELAGO_CACHE at a larger disk"

# The cache must be writable by whoever runs setup: the Go toolchain and the artifacts are written there.
[[ -w $dir ]] ||
    missing "a writable cache: $dir (for ARCHIPELAGO_CACHE=$cache) is not writable by $(id -un); run as root ('sudo make setup') or set ARCHIPELAGO_CACHE to a directory you own"

# inotify: every lab "VM" takes instances from root's budget; setup-host.sh raises it at runtime when it can.
inotify=/proc/sys/fs/inotify/max_user_instances
inotify_now=$(<"$inotify")
if ((inotify_now < inotify_minimum)); then
    if [[ $privilege == root ]]; then writable() { [[ -w $1 ]]; }; else writable() { sudo -n test -w "$1"; }; fi
    writable "$inotify" ||
    missing "fs.inotify.max_user_instances >= $inotify_minimum: it is $inotify_now and $inotify is read-only here; raise it on the host (sysctl -w fs.inotify.max_user_instances=$inotify_minimum)"
fi

# Go is not a prerequisite (scripts/go-toolchain.py fetches one); say which one is on PATH, if any.
if command -v go >/dev/null; then
    go="go on PATH: $(GOTOOLCHAIN=local go version 2>/dev/null | awk '{print $3}')"
else
    go="no go on PATH"
fi

printf 'prerequisites met: %s, %s, %s, %s GiB free at %s, inotify instances %s, %s\n' \
    "$os_name" "$python" "$privilege" "$free_gib" "$dir" "$inotify_now" "$go"
