#!/usr/bin/env bash
# Build Traefik's image with no image registry, and keep the Gateway API's standard CRDs, for the clusters whose
# inventory turns the traefik role on. Called by scripts/build-artifacts.sh --traefik (make artifacts passes it when an
# inventory sets `traefik_enabled: true`), runnable alone. The result is
#
#   $ARCHIPELAGO_CACHE/artifacts/traefik-<version>/
#     VERSIONS              key=value lines, written last: its presence means "complete"
#     SHA256SUMS            sha256sum of every other file, relative paths
#     crds/<name>.yaml      the Gateway API's standard-channel CRDs, from the module sigs.k8s.io/gateway-api
#     images/traefik.tar    docker-archive tarball, tagged as roles/traefik names it
#     images/images.txt     "<full image ref> <file name>"
#
# The Gateway API version must be the one Traefik's go.mod requires (the client Traefik watches the CRDs with), so
# the script stops when versions.yml's gateway_api and Traefik's go.mod disagree.
# A warm machine (VERSIONS equal to the wanted one) exits at once.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
TRAEFIK_VERSION=${TRAEFIK_VERSION:-$(version traefik)}              # versions.yml
TRAEFIK_MODULE=${TRAEFIK_MODULE:-github.com/traefik/traefik/v3}
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-$(version gateway_api)}  # versions.yml
GATEWAY_API_MODULE=${GATEWAY_API_MODULE:-sigs.k8s.io/gateway-api}
# Where the image claims to come from: the name roles/traefik's defaults give (traefik_image).
TRAEFIK_IMAGE=${TRAEFIK_IMAGE:-docker.io/library/traefik:$TRAEFIK_VERSION}

NAME=traefik
OUT=$ARCHIPELAGO_CACHE/artifacts/traefik-$TRAEFIK_VERSION
RECIPE=1                                             # bump when the steps below change

WANTED_VERSIONS="traefik=$TRAEFIK_VERSION
module=$TRAEFIK_MODULE@$TRAEFIK_VERSION
gateway_api=$GATEWAY_API_MODULE@$GATEWAY_API_VERSION
image=$TRAEFIK_IMAGE
recipe=$RECIPE"

artifacts_begin

step "traefik $TRAEFIK_VERSION source"
SRC=$ARCHIPELAGO_CACHE/src/traefik-$TRAEFIK_VERSION
module_copy "$TRAEFIK_MODULE@$TRAEFIK_VERSION" "$SRC"
required=$(sed -n -E "s#^[[:space:]]*(require[[:space:]]+)?$GATEWAY_API_MODULE[[:space:]]+(v[^[:space:]]+).*#\2#p" "$SRC/go.mod")
[[ $required == "$GATEWAY_API_VERSION" ]] ||
    die "$TRAEFIK_MODULE@$TRAEFIK_VERSION requires $GATEWAY_API_MODULE ${required:-(none)} but versions.yml says gateway_api: $GATEWAY_API_VERSION; make them agree (the CRDs must be those of the client Traefik watches them with)"
step_done

# One binary, about 14 min cold on the loaded 2-core machine. The stamps are what upstream's Makefile sets; the proxy
# has no git commit, so the build date is the release's commit time from the module's .info.
step "traefik binary"
info=$(module_field "$TRAEFIK_MODULE@$TRAEFIK_VERSION" Info)
date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")
(cd "$SRC" && nice -n "$NICE" go build -trimpath \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION -X github.com/traefik/traefik/v3/pkg/version.BuildDate=$date" \
    -o "$STAGE/" ./cmd/traefik)
[[ -x $STAGE/traefik ]] || die "go build made no traefik"
"$STAGE/traefik" version | grep -qE "^Version:[[:space:]]+$TRAEFIK_VERSION\$" ||
    die "the traefik built reports $("$STAGE/traefik" version | head -1), expected $TRAEFIK_VERSION"
step_done

# The standard channel, as the module's config/crd/kustomization.yaml lists it (the experimental channel's
# TCPRoute, TLSRoute, ... are left out: the role does not turn on Traefik's experimentalChannel).
step "gateway api $GATEWAY_API_VERSION crds"
gw=$(module_field "$GATEWAY_API_MODULE@$GATEWAY_API_VERSION" Dir)
mapfile -t crds < <(sed -n -E 's#^- (standard/[^[:space:]]+\.yaml)$#\1#p' "$gw/config/crd/kustomization.yaml")
((${#crds[@]})) || die "$gw/config/crd/kustomization.yaml lists no standard/*.yaml"
mkdir -p "$WORK/crds"
for crd in "${crds[@]}"; do
    grep -q "gateway.networking.k8s.io/bundle-version: $GATEWAY_API_VERSION\$" "$gw/config/crd/$crd" ||
        die "$gw/config/crd/$crd is not bundle-version $GATEWAY_API_VERSION"
    grep -q 'gateway.networking.k8s.io/channel: standard$' "$gw/config/crd/$crd" ||
        die "$gw/config/crd/$crd is not of the standard channel"
    cp "$gw/config/crd/$crd" "$WORK/crds/"
    log "    $(basename "$crd")"
done
step_done

step "traefik image"
entrypoint_context "$STAGE/traefik" "$WORK/context-traefik"
image_save "$TRAEFIK_IMAGE" traefik.tar "$WORK/context-traefik"
step_done

artifacts_finish
