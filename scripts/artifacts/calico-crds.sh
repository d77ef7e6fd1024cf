#!/usr/bin/env bash
# Fetch Calico's CustomResourceDefinitions (crd.projectcalico.org, the Kubernetes datastore) from the Go module
# proxy into the offline artifacts, for the cni_calico role and its tests. Called by scripts/build-artifacts.sh
# before its own up-to-date check, and runnable alone. The result is
#
#   $ARCHIPELAGO_CACHE/artifacts/calico-<version>/
#     VERSIONS        key=value lines, written last: its presence means "complete"
#     SHA256SUMS      sha256sum of every other file, relative paths
#     crds/           crd.projectcalico.org_<plural>.yaml, as Calico ships them
#
# It has a directory and a stamp of its own, so adding or changing Calico never invalidates the Kubernetes
# artifacts. A warm machine (VERSIONS equal to the wanted one) exits at once.
set -euo pipefail

# Calico publishes no semantic-version tags for its Go module (the monorepo's module path has no /v3), so the
# proxy knows commits by pseudo-version. The proxy reachable here serves exactly one of them (every other
# commit, the v3.29/v3.30 tag commits included, answers 403): a commit on release-v3.28 whose
# libcalico-go/config/crd is byte-identical to the v3.28.4 and v3.28.5 tags. CALICO_MODULE_SUM pins it
# (go also checks it against sum.golang.org). See scripts/artifacts/README.md.
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
CALICO_VERSION=${CALICO_VERSION:-$(version calico)}   # versions.yml
CALICO_MODULE=${CALICO_MODULE:-github.com/projectcalico/calico}
CALICO_MODULE_VERSION=${CALICO_MODULE_VERSION:-v1.11.0-cni-plugin.0.20250813170300-a0db560f0520}
CALICO_MODULE_SUM=${CALICO_MODULE_SUM:-h1:TXnPEzx4pLWgwzCetIO/VJuz4iBZZrOdNSv16a50YqE=}
CALICO_CRD_DIR=${CALICO_CRD_DIR:-libcalico-go/config/crd}   # inside the module

ARCHIPELAGO_CACHE=${ARCHIPELAGO_CACHE:-/var/cache/archipelago}
ARCHIPELAGO_FORCE=${ARCHIPELAGO_FORCE:-0}
OUT=$ARCHIPELAGO_CACHE/artifacts/calico-$CALICO_VERSION

WANTED_VERSIONS="calico=$CALICO_VERSION
module=$CALICO_MODULE@$CALICO_MODULE_VERSION
module_sum=$CALICO_MODULE_SUM"

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

up_to_date() {
    [[ $ARCHIPELAGO_FORCE != 1 && -f $OUT/VERSIONS ]] && [[ $(<"$OUT/VERSIONS") == "$WANTED_VERSIONS" ]]
}
if up_to_date; then
    log "calico artifacts up to date: $OUT"
    exit 0
fi

# The same Go as build-artifacts.sh: the go on PATH when new enough, else the pinned toolchain from the cache.
GO=$(ARCHIPELAGO_CACHE=$ARCHIPELAGO_CACHE "$(dirname "${BASH_SOURCE[0]}")/../go-toolchain.py") ||
    die "no usable Go, see the line above"
PATH=$(dirname "$GO"):$PATH
export PATH
unset GOROOT
export GOMODCACHE=$ARCHIPELAGO_CACHE/go/mod GOCACHE=$ARCHIPELAGO_CACHE/go/build
export GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off
command -v go >/dev/null || die "go not found on PATH ($GO)"
mkdir -p "$GOMODCACHE" "$ARCHIPELAGO_CACHE/artifacts"
cd "$ARCHIPELAGO_CACHE"                              # never inside some other Go module

exec 8>"$ARCHIPELAGO_CACHE/.calico.lock"
flock 8
if up_to_date; then
    log "calico artifacts up to date: $OUT"
    exit 0
fi

START=$SECONDS
log "==> calico $CALICO_VERSION CRDs ($CALICO_MODULE@$CALICO_MODULE_VERSION)"
json=$(go mod download -json "$CALICO_MODULE@$CALICO_MODULE_VERSION") || die "cannot download $CALICO_MODULE@$CALICO_MODULE_VERSION: $json"
field() { sed -n "s/^\t\"$1\": \"\(.*\)\",\?$/\1/p" <<<"$json"; }
sum=$(field Sum)
dir=$(field Dir)
[[ $sum == "$CALICO_MODULE_SUM" ]] || die "$CALICO_MODULE@$CALICO_MODULE_VERSION has checksum $sum, expected $CALICO_MODULE_SUM"
shopt -s nullglob
crds=("$dir/$CALICO_CRD_DIR"/crd.projectcalico.org_*.yaml)
((${#crds[@]})) || die "no crd.projectcalico.org_*.yaml in $dir/$CALICO_CRD_DIR"
for kind in ippools bgpconfigurations bgppeers ipamblocks blockaffinities; do
    [[ -f $dir/$CALICO_CRD_DIR/crd.projectcalico.org_$kind.yaml ]] || die "the module has no $kind CRD"
done

WORK=$OUT.tmp
rm -rf "$WORK"
mkdir -p "$WORK/crds"
install -m 0644 "${crds[@]}" "$WORK/crds/"          # the module cache is read-only; the copies are not
(cd "$WORK" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum) >"$WORK/SHA256SUMS"
printf '%s\n' "$WANTED_VERSIONS" >"$WORK/VERSIONS"
if [[ -e $OUT ]]; then
    mv "$OUT" "$OUT.old.$$"
    rm -rf "$OUT.old.$$"
fi
mv "$WORK" "$OUT"
log "    ${#crds[@]} CRDs in $((SECONDS - START)) s"
log "calico artifacts ready: $OUT"
