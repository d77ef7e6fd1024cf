#!/usr/bin/env bash
# Build Archipelago's offline Kubernetes artifacts from source, with no image registry.
#
# Everything comes from the Go module proxy (Kubernetes, etcd, CoreDNS, flannel, CNI plugins)
# and Debian's mirror (a small iptables/nftables base image, catatonit for pause). The result is
#
#   $ARCHIPELAGO_CACHE/artifacts/kubernetes-<version>/
#     VERSIONS              key=value lines, written last: its presence means "complete"
#     SHA256SUMS            sha256sum of every other file, relative paths
#     bin/                  kubeadm kubelet kubectl
#     cni/bin/              bridge host-local loopback portmap bandwidth firewall tuning flannel
#     images/<name>.tar     docker-archive tarballs (podman save --format docker-archive)
#     images/images.txt     "<full image ref> <file name>" per image
#
#   $ARCHIPELAGO_CACHE/artifacts/calico-<version>/crds/   Calico's CRDs (scripts/artifacts/calico-crds.sh)
#   $ARCHIPELAGO_CACHE/artifacts/calico-images-<version>/ Calico's images, only with --calico
#                                                         (scripts/artifacts/calico-images.sh)
#
#   $ARCHIPELAGO_CACHE/artifacts/metallb-<version>/       MetalLB's images and manifest, only with --metallb
#                                                         (scripts/artifacts/metallb.sh)
#   $ARCHIPELAGO_CACHE/artifacts/traefik-<version>/       Traefik's image and the Gateway API CRDs, only with --traefik
#                                                         (scripts/artifacts/traefik.sh)
#
# Usage: build-artifacts.sh [--calico] [--metallb] [--traefik]. `make artifacts` passes --calico when an inventory
# sets `cni: calico`, --metallb when one sets `metallb_enabled: true`, and --traefik when one sets
# `traefik_enabled: true`.
# A warm machine (VERSIONS present and equal to the requested versions) exits at once.
# See scripts/artifacts/README.md for the variables, the layout and measured build times.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Versions (override any of them from the environment)
# ---------------------------------------------------------------------------------------------
# Every default comes from versions.yml (the roles read the same file); why each is the one it is is noted there.
source "$(dirname "${BASH_SOURCE[0]}")/artifacts/versions.sh"
KUBERNETES_VERSION=${KUBERNETES_VERSION:-$(version kubernetes)}
ETCD_VERSION=${ETCD_VERSION:-$(version etcd)}
COREDNS_VERSION=${COREDNS_VERSION:-$(version coredns)}
PAUSE_VERSION=${PAUSE_VERSION:-$(version pause)}
FLANNEL_VERSION=${FLANNEL_VERSION:-$(version flannel)}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-$(version cni_plugins)}
# The flannel CNI plugin. github.com/flannel-io/cni-plugin is refused by the Go proxy reachable
# here (403), so the default is the same plugin from before it moved out of the reference plugins.
FLANNEL_CNI_PLUGIN_PACKAGE=${FLANNEL_CNI_PLUGIN_PACKAGE:-github.com/containernetworking/plugins/plugins/meta/flannel}
FLANNEL_CNI_PLUGIN_VERSION=${FLANNEL_CNI_PLUGIN_VERSION:-$(version flannel_cni_plugin)}
# Where the flannel image claims to come from (the cni_flannel role reads it from images.txt).
FLANNEL_IMAGE=${FLANNEL_IMAGE:-ghcr.io/flannel-io/flannel:${FLANNEL_VERSION}}

# The CNI reference plugins to build (paths inside github.com/containernetworking/plugins).
CNI_PLUGINS=(main/bridge ipam/host-local main/loopback meta/portmap meta/bandwidth meta/firewall meta/tuning)

# Debian base for the images that need iptables/nftables (kube-proxy, flannel).
NETBASE_SUITE=${NETBASE_SUITE:-bookworm}
NETBASE_MIRROR=${NETBASE_MIRROR:-http://deb.debian.org/debian}
NETBASE_PACKAGES=${NETBASE_PACKAGES:-iptables,nftables,conntrack,ipset,kmod}

# ---------------------------------------------------------------------------------------------
# Paths and tool settings
# ---------------------------------------------------------------------------------------------
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FILES_DIR=$SCRIPT_DIR/artifacts                      # Containerfiles and go.mod templates
ARCHIPELAGO_CACHE=${ARCHIPELAGO_CACHE:-/var/cache/archipelago}
ARTIFACTS_DIR=$ARCHIPELAGO_CACHE/artifacts/kubernetes-$KUBERNETES_VERSION
ARCHIPELAGO_FORCE=${ARCHIPELAGO_FORCE:-0}            # 1: rebuild even if VERSIONS matches
NICE=${ARCHIPELAGO_NICE:-10}                         # the compilers share the machine
STAGING_FALLBACK_PATCHES=${STAGING_FALLBACK_PATCHES:-3} # how far a refused staging module may move (see below)

# The stamp this run would write. Compared with the existing one before any work is done.
WANTED_VERSIONS="kubernetes=$KUBERNETES_VERSION
etcd=$ETCD_VERSION
coredns=$COREDNS_VERSION
flannel=$FLANNEL_VERSION
flannel_cni_plugin=$FLANNEL_CNI_PLUGIN_VERSION
cni_plugins=$CNI_PLUGINS_VERSION
pause=$PAUSE_VERSION"

# `--print-versions`: the stamp above, from versions.yml and the environment, and nothing else done.
if [[ ${1:-} == --print-versions ]]; then
    printf '%s\n' "$WANTED_VERSIONS"
    exit 0
fi

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A warm machine stops here, before touching Go, podman or the lock.
up_to_date() {
    [[ $ARCHIPELAGO_FORCE != 1 && -f $ARTIFACTS_DIR/VERSIONS ]] &&
        [[ $(<"$ARTIFACTS_DIR/VERSIONS") == "$WANTED_VERSIONS" ]]
}
# Calico's CRDs have a directory and a stamp of their own (scripts/artifacts/calico-crds.sh), fetched before the
# Kubernetes check, so adding or bumping Calico never rebuilds Kubernetes. Its images (a Go build of several
# minutes) likewise, and only when asked for: clusters on flannel never need them.
# MetalLB (its images and the manifest its module ships) and Traefik (its image and the Gateway API CRDs) likewise,
# only for inventories that turn them on.
BUILD_CALICO_IMAGES=0
BUILD_METALLB=0
BUILD_TRAEFIK=0
for arg in "$@"; do
    case $arg in
        --calico) BUILD_CALICO_IMAGES=1 ;;
        --metallb) BUILD_METALLB=1 ;;
        --traefik) BUILD_TRAEFIK=1 ;;
        *) die "unknown argument '$arg'; the options are --calico (also build Calico's images), --metallb (MetalLB's) and --traefik (Traefik's)" ;;
    esac
done
"$(dirname "${BASH_SOURCE[0]}")/artifacts/calico-crds.sh"
if ((BUILD_CALICO_IMAGES)); then
    "$(dirname "${BASH_SOURCE[0]}")/artifacts/calico-images.sh"
fi
if ((BUILD_METALLB)); then
    "$(dirname "${BASH_SOURCE[0]}")/artifacts/metallb.sh"
fi
if ((BUILD_TRAEFIK)); then
    "$(dirname "${BASH_SOURCE[0]}")/artifacts/traefik.sh"
fi

if up_to_date; then
    log "artifacts up to date: $ARTIFACTS_DIR"
    exit 0
fi

START=$SECONDS
# The Go to build with: the go on PATH when it is new enough, else the pinned toolchain from the cache, fetched
# there if missing (scripts/go-toolchain.py; `make setup` has run it already).
GO=$(ARCHIPELAGO_CACHE=$ARCHIPELAGO_CACHE "$SCRIPT_DIR/go-toolchain.py") || die "no usable Go, see the line above"
PATH=$(dirname "$GO"):$PATH
export PATH
unset GOROOT                                         # each Go finds its own tree
export GOMODCACHE=$ARCHIPELAGO_CACHE/go/mod
export GOCACHE=$ARCHIPELAGO_CACHE/go/build
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
# Podman settings of the lab (runc runtime, ulimits under the sandbox's hard limits).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$SCRIPT_DIR/../lab/containers.conf}

mkdir -p "$GOMODCACHE" "$GOCACHE" "$ARCHIPELAGO_CACHE/artifacts" "$ARCHIPELAGO_CACHE/src"
cd "$ARCHIPELAGO_CACHE"                              # never inside some other Go module
export GOWORK=off

# One build at a time; a second caller waits, then finds the work done.
exec 9>"$ARCHIPELAGO_CACHE/.build.lock"
if ! flock -n 9; then
    log "waiting for another build-artifacts run"
    flock 9
fi
if up_to_date; then
    log "artifacts up to date: $ARTIFACTS_DIR"
    exit 0
fi

# Everything is built here and renamed to $ARTIFACTS_DIR at the very end.
WORK=$ARTIFACTS_DIR.tmp
rm -rf "$WORK"
mkdir -p "$WORK"/{bin,cni/bin,images,stage}
STAGE=$WORK/stage                                    # binaries that only go into images

# step NAME: print a header; step_done prints how long the step took.
step() { STEP_NAME=$1; STEP_START=$SECONDS; log "==> $1"; }
step_done() { log "    $STEP_NAME: $((SECONDS - STEP_START)) s"; }

gobuild() { nice -n "$NICE" go build -trimpath "$@"; }
goinstall() { nice -n "$NICE" go install -trimpath "$@"; }

# module_field MODULE@VERSION FIELD: download a module into GOMODCACHE and print one field of
# `go mod download -json` (Dir, GoMod, Sum, Time is read from the .info file).
module_field() {
    go mod download -json "$1" | sed -n "s/^\t\"$2\": \"\(.*\)\",\?$/\1/p"
}

# ---------------------------------------------------------------------------------------------
# Host tools
# ---------------------------------------------------------------------------------------------
step "host tools"
command -v go >/dev/null || die "go not found on PATH ($GO)"
command -v podman >/dev/null || die "podman not found (apt-get install podman runc)"
missing=()
command -v catatonit >/dev/null || missing+=(catatonit)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)      # flanneld needs cgo, see below
command -v file >/dev/null || missing+=(file)
if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
CATATONIT=$(command -v catatonit)
file -L "$CATATONIT" 2>/dev/null | grep -q 'statically linked' || log "warning: $CATATONIT may not be static"
log "    $(go version), GOROOT $(go env GOROOT)"
step_done

# ---------------------------------------------------------------------------------------------
# Kubernetes: all seven binaries in one `go build`, so shared packages compile once
# ---------------------------------------------------------------------------------------------
step "kubernetes $KUBERNETES_VERSION"
k8s_minor=${KUBERNETES_VERSION#v1.}                  # 33.13
k8s_minor=${k8s_minor%%.*}                           # 33
staging_version=v0.${KUBERNETES_VERSION#v1.}         # v0.33.13
k8s_gomod=$(module_field "k8s.io/kubernetes@$KUBERNETES_VERSION" GoMod)
[[ -f $k8s_gomod ]] || die "cannot download k8s.io/kubernetes@$KUBERNETES_VERSION"
# Every "k8s.io/X => ./staging/src/k8s.io/X" becomes "k8s.io/X => k8s.io/X v0.<minor>.<patch>".
staging_replaces=$(sed -n 's|^\s*\(k8s.io/[^ ]*\) => \./staging/src/.*$|\t\1 => \1 '"$staging_version"'|p' "$k8s_gomod")
[[ -n $staging_replaces ]] || die "no staging modules found in $k8s_gomod"
log "    $(wc -l <<<"$staging_replaces") staging modules -> $staging_version"
# The Go proxy reachable here refuses some staging modules at some patch releases (403 "This module version is not
# available"; at v0.33.12: k8s.io/cli-runtime, cri-api, externaljwt and kube-proxy). Such a module is taken at the
# next patch release of the same minor that the proxy serves (at most STAGING_FALLBACK_PATCHES later), and every
# substitution is printed and written to STAGING_SUBSTITUTES in the artifacts, which is then not a pure release build.
# A version whose staging modules are all served (v1.33.13) substitutes nothing and has no such file.
k8s_patch=${KUBERNETES_VERSION##*.}
substitutes=()
resolved_replaces=
while read -r mod _ _ _; do
    use=$staging_version
    if ! go mod download "$mod@$staging_version" 2>/dev/null; then
        use=
        for ((p = k8s_patch + 1; p <= k8s_patch + STAGING_FALLBACK_PATCHES; p++)); do
            if go mod download "$mod@v0.$k8s_minor.$p" 2>/dev/null; then use=v0.$k8s_minor.$p; break; fi
        done
        if [[ -n $use ]]; then
            substitutes+=("$mod $staging_version -> $use")
        else
            # Modules the seven binaries do not import (sample-apiserver, ...) need not be served; `go build` says
            # which one it misses if one it does import is refused.
            use=$staging_version
            log "    not served: $mod $staging_version nor the next $STAGING_FALLBACK_PATCHES patch releases (left as is)"
        fi
    fi
    resolved_replaces+=$'\t'"$mod => $mod $use"$'\n'
done <<<"$staging_replaces"
staging_replaces=${resolved_replaces%$'\n'}

k8s_src=$ARCHIPELAGO_CACHE/src/kubernetes-$KUBERNETES_VERSION
mkdir -p "$k8s_src"
gomod=$(<"$FILES_DIR/kubernetes.go.mod.in")
gomod=${gomod//@KUBERNETES_VERSION@/$KUBERNETES_VERSION}
gomod=${gomod//@STAGING_VERSION@/$staging_version}
gomod=${gomod//@STAGING_REPLACES@/$staging_replaces}
printf '%s\n' "$gomod" >"$k8s_src/go.mod"

# Version stamps. The proxy has no git commit, so gitCommit carries the module's checksum
# (h1:..., ties the binary to the exact source) and buildDate the release's commit time.
k8s_sum=$(module_field "k8s.io/kubernetes@$KUBERNETES_VERSION" Sum)
k8s_info=$(module_field "k8s.io/kubernetes@$KUBERNETES_VERSION" Info)
k8s_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$k8s_info")
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=$k8s_sum -X $pkg.buildDate=$k8s_date"
done
k8s_cmds=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
(cd "$k8s_src" && gobuild -ldflags "$ldflags" -o "$STAGE/" "${k8s_cmds[@]/#/k8s.io/kubernetes/cmd/}")
mv "$STAGE"/{kubeadm,kubelet,kubectl} "$WORK/bin/"
# Only the substitutes the binaries really contain (their build info names each module and its replacement).
built_deps=$(for cmd in "${k8s_cmds[@]}"; do
    for f in "$STAGE/$cmd" "$WORK/bin/$cmd"; do if [[ -f $f ]]; then go version -m "$f"; fi; done
done | tr -s '\t ' ' ')
used_substitutes=()
for sub in "${substitutes[@]}"; do
    read -r mod _ _ use <<<"$sub"
    if grep -qF " => $mod $use " <<<"$built_deps"; then
        used_substitutes+=("$sub")
        log "    substitute: $mod $use (the proxy refuses $staging_version)"
    fi
done
if ((${#used_substitutes[@]})); then
    printf '%s\n' "# staging modules the Go proxy refused at $staging_version, built at the next patch release it serves" \
        "${used_substitutes[@]}" >"$WORK/STAGING_SUBSTITUTES"
fi
"$WORK/bin/kubeadm" version -o short | grep -qx "$KUBERNETES_VERSION" ||
    die "kubeadm reports $("$WORK/bin/kubeadm" version -o short), expected $KUBERNETES_VERSION"
step_done

# The image refs come from the kubeadm just built; the pinned versions must agree with it.
mapfile -t KUBEADM_IMAGES < <("$WORK/bin/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null)
((${#KUBEADM_IMAGES[@]})) || die "kubeadm config images list printed nothing"
declare -A IMAGE_REF                                  # short name -> full ref
for ref in "${KUBEADM_IMAGES[@]}"; do
    name=${ref##*/}
    IMAGE_REF[${name%%:*}]=$ref
done
for name in kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns pause; do
    [[ -n ${IMAGE_REF[$name]:-} ]] || die "kubeadm lists no $name image: ${KUBEADM_IMAGES[*]}"
done
tag_of() { printf '%s' "${IMAGE_REF[$1]##*:}"; }
etcd_tag=$(tag_of etcd)
[[ ${etcd_tag%-*} == "${ETCD_VERSION#v}" ]] || die "kubeadm wants etcd $etcd_tag, ETCD_VERSION is $ETCD_VERSION"
[[ $(tag_of coredns) == "$COREDNS_VERSION" ]] || die "kubeadm wants coredns $(tag_of coredns), COREDNS_VERSION is $COREDNS_VERSION"
[[ $(tag_of pause) == "$PAUSE_VERSION" ]] || die "kubeadm wants pause $(tag_of pause), PAUSE_VERSION is $PAUSE_VERSION"

# ---------------------------------------------------------------------------------------------
# etcd (wrapper module, see scripts/artifacts/etcd.go.mod.in)
# ---------------------------------------------------------------------------------------------
step "etcd $ETCD_VERSION"
etcd_src=$ARCHIPELAGO_CACHE/src/etcd-$ETCD_VERSION
mkdir -p "$etcd_src"
gomod=$(<"$FILES_DIR/etcd.go.mod.in")
printf '%s\n' "${gomod//@ETCD_VERSION@/$ETCD_VERSION}" >"$etcd_src/go.mod"
(cd "$etcd_src" && gobuild -ldflags "-s -w" -o "$STAGE/etcd" go.etcd.io/etcd/server/v3)
"$STAGE/etcd" --version | grep -q "etcd Version: ${ETCD_VERSION#v}" || die "etcd reports the wrong version"
step_done

# ---------------------------------------------------------------------------------------------
# CoreDNS, flanneld, CNI plugins: plain `go install module@version` (no replace directives)
# ---------------------------------------------------------------------------------------------
step "coredns $COREDNS_VERSION"
GOBIN=$STAGE goinstall -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
step_done

# flanneld is the one cgo binary: on amd64 its main package imports the UDP backend, which is
# C (pkg/backend/udp/proxy_amd64.c) and does not compile with CGO_ENABLED=0. Like upstream's
# Makefile, build it with cgo and link it statically (netgo/osusergo: no glibc NSS at run time).
step "flanneld $FLANNEL_VERSION"
CGO_ENABLED=1 GOBIN=$STAGE goinstall -tags netgo,osusergo \
    -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION -extldflags -static" \
    "github.com/flannel-io/flannel@$FLANNEL_VERSION"
mv "$STAGE/flannel" "$STAGE/flanneld"
file "$STAGE/flanneld" | grep -q 'statically linked' || die "flanneld is not statically linked"
step_done

step "cni plugins $CNI_PLUGINS_VERSION"
cni_pkgs=("${CNI_PLUGINS[@]/#/github.com/containernetworking/plugins/plugins/}")
GOBIN=$WORK/cni/bin goinstall \
    -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    "${cni_pkgs[@]/%/@$CNI_PLUGINS_VERSION}"
step_done

step "flannel cni plugin $FLANNEL_CNI_PLUGIN_VERSION"
flannel_cni_ldflags="-s -w"
case $FLANNEL_CNI_PLUGIN_PACKAGE in
    github.com/containernetworking/plugins/*)
        flannel_cni_ldflags+=" -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$FLANNEL_CNI_PLUGIN_VERSION" ;;
esac
GOBIN=$WORK/cni/bin goinstall -ldflags "$flannel_cni_ldflags" "$FLANNEL_CNI_PLUGIN_PACKAGE@$FLANNEL_CNI_PLUGIN_VERSION"
[[ -x $WORK/cni/bin/flannel ]] || die "$FLANNEL_CNI_PLUGIN_PACKAGE did not produce a 'flannel' binary"
step_done

# ---------------------------------------------------------------------------------------------
# Debian base image for kube-proxy and flannel, cached by a hash of what goes into it
# ---------------------------------------------------------------------------------------------
step "netbase image"
NETBASE_RECIPE=2                                     # bump when the steps below change
netbase_key=$(printf '%s\n' "$NETBASE_RECIPE" "$NETBASE_SUITE" "$NETBASE_MIRROR" "$NETBASE_PACKAGES" minbase |
    sha256sum | cut -c1-12)
NETBASE=localhost/archipelago-netbase:$netbase_key
if podman image exists "$NETBASE"; then
    log "    $NETBASE exists"
else
    rootfs=$ARCHIPELAGO_CACHE/netbase-rootfs
    rm -rf "$rootfs"
    log "    debootstrap $NETBASE_SUITE ($NETBASE_PACKAGES)"
    debootstrap --variant=minbase --include="$NETBASE_PACKAGES" "$NETBASE_SUITE" "$rootfs" "$NETBASE_MIRROR" \
        >"$ARCHIPELAGO_CACHE/netbase-debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $ARCHIPELAGO_CACHE/netbase-debootstrap.log"
    # Drop what a container never reads: package caches, docs, man pages, translations.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/{doc,man,info,locale}/*
    tar -C "$rootfs" -c . | podman import -q - "$NETBASE" >/dev/null
    rm -rf "$rootfs"
    log "    imported $NETBASE"
fi
step_done

# ---------------------------------------------------------------------------------------------
# Images: build, tag exactly as kubeadm lists them, save as docker-archive
# ---------------------------------------------------------------------------------------------
step "images"
# build_image NAME REF CONTAINERFILE FILE...: build REF from a context holding only FILEs.
build_image() {
    local name=$1 ref=$2 containerfile=$3
    shift 3
    local args=()
    grep -q '^ARG NAME' "$FILES_DIR/$containerfile" && args+=(--build-arg "NAME=$name")
    grep -q '^ARG BASE' "$FILES_DIR/$containerfile" && args+=(--build-arg "BASE=$NETBASE")
    local ctx=$WORK/context-$name
    mkdir -p "$ctx"
    local f
    for f in "$@"; do ln -f "$f" "$ctx/" 2>/dev/null || cp "$f" "$ctx/"; done
    log "    $ref"
    podman build -q --pull=never "${args[@]}" \
        -f "$FILES_DIR/$containerfile" -t "$ref" "$ctx" >/dev/null
    podman save -q --format docker-archive -o "$WORK/images/$name.tar" "$ref"
    printf '%s %s\n' "$ref" "$name.tar" >>"$WORK/images/images.txt"
    rm -rf "$ctx"
}
for name in kube-apiserver kube-controller-manager kube-scheduler etcd; do
    build_image "$name" "${IMAGE_REF[$name]}" Containerfile.scratch "$STAGE/$name"
done
build_image kube-proxy "${IMAGE_REF[kube-proxy]}" Containerfile.netbase "$STAGE/kube-proxy"
build_image coredns "${IMAGE_REF[coredns]}" Containerfile.coredns "$STAGE/coredns"
build_image pause "${IMAGE_REF[pause]}" Containerfile.pause "$CATATONIT"
build_image flannel "$FLANNEL_IMAGE" Containerfile.flannel "$STAGE/flanneld" "$WORK/cni/bin/flannel"
rm -rf "$STAGE"
step_done

# ---------------------------------------------------------------------------------------------
# Checksums, the stamp (last), and the rename that makes the directory visible
# ---------------------------------------------------------------------------------------------
step "checksums and stamp"
sums=$(cd "$WORK" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum)
printf '%s\n' "$sums" >"$WORK/SHA256SUMS"
printf '%s\n' "$WANTED_VERSIONS" >"$WORK/VERSIONS"
if [[ -e $ARTIFACTS_DIR ]]; then
    mv "$ARTIFACTS_DIR" "$ARTIFACTS_DIR.old.$$"
    rm -rf "$ARTIFACTS_DIR.old.$$"
fi
mv "$WORK" "$ARTIFACTS_DIR"
step_done

log "artifacts ready: $ARTIFACTS_DIR"
printf 'built in %d s\n' "$((SECONDS - START))" >&2
