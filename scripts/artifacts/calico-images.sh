#!/usr/bin/env bash
# Build Calico's images (calico-node, and the image that installs the calico CNI plugins) with no image registry,
# for the clusters that choose `cni: calico`. Called by scripts/build-artifacts.sh --calico (make artifacts does that
# when an inventory asks for Calico), runnable alone. The result is
#
#   $ARCHIPELAGO_CACHE/artifacts/calico-images-<version>/
#     VERSIONS              key=value lines, written last: its presence means "complete"
#     SHA256SUMS            sha256sum of every other file, relative paths
#     images/<name>.tar     docker-archive tarballs, tagged as roles/cni_calico names them
#     images/images.txt     "<full image ref> <file name>" per image
#
# The binaries are Go builds of the same Calico module the CRDs come from (scripts/artifacts/calico-crds.sh). The
# calico-node image is a Debian base with Debian's BIRD 1.6.8, runit and iptables/nftables/ipset, plus Calico's own
# files from that module (runit services, start script, confd templates). See scripts/artifacts/README.md.
# A warm machine (VERSIONS equal to the wanted one) exits at once.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CALICO_VERSION=${CALICO_VERSION:-$(version calico)}   # versions.yml
CALICO_MODULE=${CALICO_MODULE:-github.com/projectcalico/calico}
CALICO_MODULE_VERSION=${CALICO_MODULE_VERSION:-v1.11.0-cni-plugin.0.20250813170300-a0db560f0520}
CALICO_MODULE_SUM=${CALICO_MODULE_SUM:-h1:TXnPEzx4pLWgwzCetIO/VJuz4iBZZrOdNSv16a50YqE=}
# Calico's api/ folder is a module of its own that is not in the module's zip (its go.mod says `=> ./api`), and the
# proxy refuses its release commits. This commit is served, and its pkg/apis differ from release-v3.28 only in
# FelixConfiguration fields that Archipelago does not set.
CALICO_API_MODULE_VERSION=${CALICO_API_MODULE_VERSION:-v0.0.0-20240708202104-e3f70b269c2c}
# Where the images claim to come from: the names roles/cni_calico's defaults give (cni_calico_*_image).
CALICO_NODE_IMAGE=${CALICO_NODE_IMAGE:-docker.io/calico/node:$CALICO_VERSION}
CALICO_CNI_IMAGE=${CALICO_CNI_IMAGE:-docker.io/calico/cni:$CALICO_VERSION}

# Debian base of calico-node: BIRD 1.x (Calico's confd templates are BIRD 1 syntax), runit (the image's process
# supervisor, as upstream's), and what Felix programs the dataplane with.
CALICO_BASE_SUITE=${CALICO_BASE_SUITE:-bookworm}
CALICO_BASE_MIRROR=${CALICO_BASE_MIRROR:-${NETBASE_MIRROR:-http://deb.debian.org/debian}}
CALICO_BASE_PACKAGES=${CALICO_BASE_PACKAGES:-bird,runit,iptables,nftables,ipset,conntrack,iproute2,kmod,procps}

NAME=calico-images
OUT=$ARCHIPELAGO_CACHE/artifacts/calico-images-$CALICO_VERSION
RECIPE=2                                             # bump when the steps below change

WANTED_VERSIONS="calico=$CALICO_VERSION
module=$CALICO_MODULE@$CALICO_MODULE_VERSION
module_sum=$CALICO_MODULE_SUM
api_module=github.com/projectcalico/api@$CALICO_API_MODULE_VERSION
node_image=$CALICO_NODE_IMAGE
cni_image=$CALICO_CNI_IMAGE
base=$CALICO_BASE_SUITE $CALICO_BASE_PACKAGES
recipe=$RECIPE"

artifacts_begin
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

# ---------------------------------------------------------------------------------------------
# Source: the module, copied to a writable tree whose go.mod takes the api module from the proxy
# ---------------------------------------------------------------------------------------------
step "calico $CALICO_VERSION source ($CALICO_MODULE@$CALICO_MODULE_VERSION)"
SRC=$ARCHIPELAGO_CACHE/src/calico-$CALICO_VERSION
module_copy "$CALICO_MODULE@$CALICO_MODULE_VERSION" "$SRC" "$CALICO_MODULE_SUM"
# Once per copy (the `=> ./api` line is gone afterwards); a changed CALICO_API_MODULE_VERSION rewrites the line.
sed -i -E "s#^(\s*github.com/projectcalico/api) => (\./api|github.com/projectcalico/api v[^ ]+)\$#\1 => github.com/projectcalico/api $CALICO_API_MODULE_VERSION#" \
    "$SRC/go.mod"
grep -q "github.com/projectcalico/api => github.com/projectcalico/api $CALICO_API_MODULE_VERSION" "$SRC/go.mod" ||
    die "$SRC/go.mod has no 'github.com/projectcalico/api => ./api' line to replace"
step_done

# ---------------------------------------------------------------------------------------------
# Binaries, in one `go build` so shared packages compile once (about 9 min cold on 2 loaded cores)
# ---------------------------------------------------------------------------------------------
step "calico binaries"
(cd "$SRC" && nice -n "$NICE" go build -trimpath \
    -ldflags "-s -w -X github.com/projectcalico/calico/node/pkg/lifecycle/startup.VERSION=$CALICO_VERSION" \
    -o "$STAGE/" ./node/cmd/calico-node ./node/cmd/mountns ./cni-plugin/cmd/calico ./cni-plugin/cmd/install)
for bin in calico-node mountns calico install; do [[ -x $STAGE/$bin ]] || die "go build made no $bin"; done
step_done

# ---------------------------------------------------------------------------------------------
# Debian base of calico-node, cached by a hash of what goes into it
# ---------------------------------------------------------------------------------------------
step "calico-node base image"
base_key=$(printf '%s\n' "$CALICO_BASE_SUITE" "$CALICO_BASE_MIRROR" "$CALICO_BASE_PACKAGES" minbase |
    sha256sum | cut -c1-12)
BASE=localhost/archipelago-calico-base:$base_key
if podman image exists "$BASE"; then
    log "    $BASE exists"
else
    rootfs=$ARCHIPELAGO_CACHE/calico-base-rootfs
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include="$CALICO_BASE_PACKAGES" "$CALICO_BASE_SUITE" "$rootfs" \
        "$CALICO_BASE_MIRROR" >"$ARCHIPELAGO_CACHE/calico-base-debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $ARCHIPELAGO_CACHE/calico-base-debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/{doc,man,info,locale}/*
    tar -C "$rootfs" -c . | podman import -q - "$BASE" >/dev/null
    rm -rf "$rootfs"
    log "    imported $BASE"
fi
step_done

# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------
step "calico images"
# calico-node: Calico's runit services and start scripts (node/filesystem) and confd's templates, as upstream's
# image has them. Two changes for Debian's BIRD: the IPAM template loses its `krt_tunnel = ...;` assignment (an
# attribute only Calico's BIRD fork has, used for IP-in-IP, which pools here never use), and `birdcl` (what
# calico-node's readiness check runs) is Debian's `birdc`.
ctx=$WORK/context-node
mkdir -p "$ctx/etc/calico/confd"
cp -r "$SRC/node/filesystem/etc/." "$ctx/etc/"
mkdir -p "$ctx/sbin"
cp "$SRC/node/filesystem/sbin/"* "$ctx/sbin/"
cp -r "$SRC/confd/etc/calico/confd/conf.d" "$SRC/confd/etc/calico/confd/templates" "$ctx/etc/calico/confd/"
mkdir -p "$ctx/etc/calico/confd/config"
rm -f "$ctx/etc/calico/confd/templates/README.md"
for template in bird_ipam.cfg.template bird6_ipam.cfg.template; do
    sed -i '/krt_tunnel *=/d' "$ctx/etc/calico/confd/templates/$template"
done
! grep -rq krt_tunnel "$ctx/etc/calico/confd/templates" || die "a confd template still sets krt_tunnel"
cp "$STAGE/calico-node" "$STAGE/mountns" "$ctx/"
image_save "$CALICO_NODE_IMAGE" calico-node.tar "$ctx" "$ARTIFACTS_SCRIPT_DIR/Containerfile.calico-node" \
    --build-arg "BASE=$BASE"

# The CNI image: the `install` program and the plugins it copies to the node (calico-ipam is the calico binary,
# which acts on the name it is called by).
ctx=$WORK/context-cni
mkdir -p "$ctx/bin"
cp "$STAGE/install" "$STAGE/calico" "$ctx/bin/"
ln -s calico "$ctx/bin/calico-ipam"                 # install copies what the link points to
image_save "$CALICO_CNI_IMAGE" calico-cni.tar "$ctx" "$ARTIFACTS_SCRIPT_DIR/Containerfile.calico-cni"
step_done

artifacts_finish
