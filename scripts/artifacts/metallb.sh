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

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
METALLB_VERSION=${METALLB_VERSION:-$(version metallb)}   # versions.yml
METALLB_MODULE=${METALLB_MODULE:-go.universe.tf/metallb}
METALLB_CONTROLLER_IMAGE=${METALLB_CONTROLLER_IMAGE:-quay.io/metallb/controller:$METALLB_VERSION}
METALLB_SPEAKER_IMAGE=${METALLB_SPEAKER_IMAGE:-quay.io/metallb/speaker:$METALLB_VERSION}

NAME=metallb
OUT=$ARCHIPELAGO_CACHE/artifacts/metallb-$METALLB_VERSION
RECIPE=1                                             # bump when the steps below change

WANTED_VERSIONS="metallb=$METALLB_VERSION
module=$METALLB_MODULE@$METALLB_VERSION
controller_image=$METALLB_CONTROLLER_IMAGE
speaker_image=$METALLB_SPEAKER_IMAGE
recipe=$RECIPE"

artifacts_begin

# The module's go.mod is its own (no replace of a missing folder); the build runs in a writable copy only because
# -mod=mod may update go.sum.
SRC=$ARCHIPELAGO_CACHE/src/metallb-$METALLB_VERSION
module_copy "$METALLB_MODULE@$METALLB_VERSION" "$SRC"

step "metallb $METALLB_VERSION binaries"
# internal/version already says the release (version = "0.15.2"); nothing to stamp.
(cd "$SRC" && nice -n "$NICE" go build -trimpath -ldflags "-s -w" -o "$STAGE/" ./controller ./speaker)
for bin in controller speaker; do [[ -x $STAGE/$bin ]] || die "go build made no $bin"; done
step_done

step "metallb manifests"
mkdir -p "$WORK/manifests"
manifest=$SRC/config/manifests/metallb-native.yaml
[[ -f $manifest ]] || die "$METALLB_MODULE@$METALLB_VERSION has no config/manifests/metallb-native.yaml"
cp "$manifest" "$WORK/manifests/"
for name in controller speaker; do
    grep -q "image: quay.io/metallb/$name:$METALLB_VERSION\$" "$WORK/manifests/metallb-native.yaml" ||
        die "metallb-native.yaml names no quay.io/metallb/$name:$METALLB_VERSION image"
done
step_done

step "metallb images"
for pair in "controller $METALLB_CONTROLLER_IMAGE" "speaker $METALLB_SPEAKER_IMAGE"; do
    read -r name ref <<<"$pair"
    entrypoint_context "$STAGE/$name" "$WORK/context-$name"
    image_save "$ref" "metallb-$name.tar" "$WORK/context-$name"
done
step_done

artifacts_finish
