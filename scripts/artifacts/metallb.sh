#!/usr/bin/env bash
# Build MetalLB's images (controller and speaker) with no image registry, and keep the manifest its module
# ships, for the clusters whose inventory turns the metallb role on. Called by scripts/build-artifacts.sh --metallb
# (make artifacts passes it when an inventory sets `metallb_enabled: true`), runnable alone. The result is
#
#   $ARCHIPELAGO_CACHE/artifacts/metallb-<version>/
#     VERSIONS              key=value lines, written last: its presence means "complete"
#     SHA256SUMS            sha256sum of every other file, relative paths
#     manifests/metallb-native.yaml   the module's own L2 ("native") manifest: CRDs, RBAC, controller, speaker, webhook
#     images/<name>.tar     docker-archive tarballs, tagged as roles/metallb names them
#     images/images.txt     "<full image ref> <file name>" per image
#
# A warm machine (VERSIONS equal to the wanted one) exits at once.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
METALLB_VERSION=${METALLB_VERSION:-$(version metallb)}   # versions.yml
METALLB_MODULE=${METALLB_MODULE:-go.universe.tf/metallb}
METALLB_CONTROLLER_IMAGE=${METALLB_CONTROLLER_IMAGE:-quay.io/metallb/controller:$METALLB_VERSION}
METALLB_SPEAKER_IMAGE=${METALLB_SPEAKER_IMAGE:-quay.io/metallb/speaker:$METALLB_VERSION}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ARCHIPELAGO_CACHE=${ARCHIPELAGO_CACHE:-/var/cache/archipelago}
ARCHIPELAGO_FORCE=${ARCHIPELAGO_FORCE:-0}
NICE=${ARCHIPELAGO_NICE:-10}
OUT=$ARCHIPELAGO_CACHE/artifacts/metallb-$METALLB_VERSION
RECIPE=1                                             # bump when the steps below change

WANTED_VERSIONS="metallb=$METALLB_VERSION
module=$METALLB_MODULE@$METALLB_VERSION
controller_image=$METALLB_CONTROLLER_IMAGE
speaker_image=$METALLB_SPEAKER_IMAGE
recipe=$RECIPE"

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

up_to_date() {
    [[ $ARCHIPELAGO_FORCE != 1 && -f $OUT/VERSIONS ]] && [[ $(<"$OUT/VERSIONS") == "$WANTED_VERSIONS" ]]
}
if up_to_date; then
    log "metallb artifacts up to date: $OUT"
    exit 0
fi

GO=$(ARCHIPELAGO_CACHE=$ARCHIPELAGO_CACHE "$SCRIPT_DIR/../go-toolchain.py") || die "no usable Go, see the line above"
PATH=$(dirname "$GO"):$PATH
export PATH
unset GOROOT
export GOMODCACHE=$ARCHIPELAGO_CACHE/go/mod GOCACHE=$ARCHIPELAGO_CACHE/go/build
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off
export CONTAINERS_CONF=${CONTAINERS_CONF:-$SCRIPT_DIR/../../lab/containers.conf}
command -v podman >/dev/null || die "podman not found (apt-get install podman runc)"
mkdir -p "$GOMODCACHE" "$GOCACHE" "$ARCHIPELAGO_CACHE/artifacts" "$ARCHIPELAGO_CACHE/src"
cd "$ARCHIPELAGO_CACHE"

exec 7>"$ARCHIPELAGO_CACHE/.metallb.lock"
if ! flock -n 7; then
    log "waiting for another metallb run"
    flock 7
fi
if up_to_date; then
    log "metallb artifacts up to date: $OUT"
    exit 0
fi

START=$SECONDS
WORK=$OUT.tmp
rm -rf "$WORK"
mkdir -p "$WORK/images" "$WORK/manifests" "$WORK/stage"
STAGE=$WORK/stage

# The module's go.mod is its own (no replace of a missing folder), so it builds in a read-only copy; the build
# runs in a writable copy only because -mod=mod may update go.sum.
json=$(go mod download -json "$METALLB_MODULE@$METALLB_VERSION") || die "cannot download $METALLB_MODULE@$METALLB_VERSION: $json"
dir=$(sed -n 's/^\t"Dir": "\(.*\)",\?$/\1/p' <<<"$json")
[[ -d $dir ]] || die "go mod download printed no Dir for $METALLB_MODULE@$METALLB_VERSION"
SRC=$ARCHIPELAGO_CACHE/src/metallb-$METALLB_VERSION
if [[ ! -f $SRC/go.mod ]]; then
    rm -rf "$SRC" "$SRC.tmp"
    cp -r "$dir/." "$SRC.tmp/"
    chmod -R u+w "$SRC.tmp"
    mv "$SRC.tmp" "$SRC"
fi

log "==> metallb $METALLB_VERSION binaries"
t=$SECONDS
# internal/version already says the release (version = "0.15.2"); nothing to stamp.
(cd "$SRC" && nice -n "$NICE" go build -trimpath -ldflags "-s -w" -o "$STAGE/" ./controller ./speaker)
for bin in controller speaker; do [[ -x $STAGE/$bin ]] || die "go build made no $bin"; done
log "    binaries: $((SECONDS - t)) s"

log "==> metallb manifests"
manifest=$SRC/config/manifests/metallb-native.yaml
[[ -f $manifest ]] || die "$METALLB_MODULE@$METALLB_VERSION has no config/manifests/metallb-native.yaml"
cp "$manifest" "$WORK/manifests/"
for name in controller speaker; do
    grep -q "image: quay.io/metallb/$name:$METALLB_VERSION\$" "$WORK/manifests/metallb-native.yaml" ||
        die "metallb-native.yaml names no quay.io/metallb/$name:$METALLB_VERSION image"
done

log "==> metallb images"
for pair in "controller $METALLB_CONTROLLER_IMAGE" "speaker $METALLB_SPEAKER_IMAGE"; do
    read -r name ref <<<"$pair"
    ctx=$WORK/context-$name
    mkdir -p "$ctx"
    cp "$STAGE/$name" "$ctx/"
    sed "s/\${NAME}/$name/g" "$SCRIPT_DIR/Containerfile.metallb" >"$ctx/Containerfile"
    podman build -q --pull=never -f "$ctx/Containerfile" -t "$ref" "$ctx" >/dev/null
    podman save -q --format docker-archive -o "$WORK/images/metallb-$name.tar" "$ref"
    printf '%s %s\n' "$ref" "metallb-$name.tar" >>"$WORK/images/images.txt"
    log "    $ref"
done
rm -rf "$WORK"/context-* "$STAGE"

(cd "$WORK" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum) >"$WORK/SHA256SUMS"
printf '%s\n' "$WANTED_VERSIONS" >"$WORK/VERSIONS"
if [[ -e $OUT ]]; then
    mv "$OUT" "$OUT.old.$$"
    rm -rf "$OUT.old.$$"
fi
mv "$WORK" "$OUT"
log "metallb artifacts ready: $OUT (built in $((SECONDS - START)) s)"
