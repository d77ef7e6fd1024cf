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
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
CALICO_VERSION=${CALICO_VERSION:-$(version calico)}   # versions.yml
CALICO_MODULE=${CALICO_MODULE:-github.com/projectcalico/calico}
CALICO_MODULE_VERSION=${CALICO_MODULE_VERSION:-v1.11.0-cni-plugin.0.20250813170300-a0db560f0520}
CALICO_MODULE_SUM=${CALICO_MODULE_SUM:-h1:TXnPEzx4pLWgwzCetIO/VJuz4iBZZrOdNSv16a50YqE=}
CALICO_CRD_DIR=${CALICO_CRD_DIR:-libcalico-go/config/crd}   # inside the module

NAME=calico-crds
OUT=$ARCHIPELAGO_CACHE/artifacts/calico-$CALICO_VERSION
WANTED_VERSIONS="calico=$CALICO_VERSION
module=$CALICO_MODULE@$CALICO_MODULE_VERSION
module_sum=$CALICO_MODULE_SUM"

artifacts_begin
log "==> calico $CALICO_VERSION CRDs ($CALICO_MODULE@$CALICO_MODULE_VERSION)"
sum=$(module_field "$CALICO_MODULE@$CALICO_MODULE_VERSION" Sum)
[[ $sum == "$CALICO_MODULE_SUM" ]] || die "$CALICO_MODULE@$CALICO_MODULE_VERSION has checksum $sum, expected $CALICO_MODULE_SUM"
dir=$(module_field "$CALICO_MODULE@$CALICO_MODULE_VERSION" Dir)
shopt -s nullglob
crds=("$dir/$CALICO_CRD_DIR"/crd.projectcalico.org_*.yaml)
((${#crds[@]})) || die "no crd.projectcalico.org_*.yaml in $dir/$CALICO_CRD_DIR"
for kind in ippools bgpconfigurations bgppeers ipamblocks blockaffinities; do
    [[ -f $dir/$CALICO_CRD_DIR/crd.projectcalico.org_$kind.yaml ]] || die "the module has no $kind CRD"
done

rmdir "$WORK/images"                                 # CRDs only: no images
mkdir -p "$WORK/crds"
install -m 0644 "${crds[@]}" "$WORK/crds/"          # the module cache is read-only; the copies are not
log "    ${#crds[@]} CRDs"
artifacts_finish
