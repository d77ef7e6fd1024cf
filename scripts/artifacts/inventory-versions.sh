#!/usr/bin/env bash
# Prints, one per line, every Kubernetes version that an inventory or a molecule scenario under the given paths names
# (`kubernetes_version: v1.33.12` in a YAML file) and that differs from versions.yml's, so that `make artifacts`
# builds the offline artifacts of those versions too, and only when something asks for them (the cluster scenario's
# older version, which it upgrades from). Without arguments it reads inventories/ and molecule/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/artifacts/versions.sh
default=$(version kubernetes)
(($#)) || set -- inventories molecule
grep -rhoE --include='*.yml' --include='*.yaml' --exclude-dir=.archipelago \
    "^[[:space:]]*kubernetes_version:[[:space:]]*[\"']?v[0-9]+\.[0-9]+\.[0-9]+[\"']?[[:space:]]*(#.*)?$" "$@" 2>/dev/null |
    sed -E "s/^[^:]*:[^v]*(v[0-9]+\.[0-9]+\.[0-9]+).*/\1/" | sort -u | grep -vx "$default" || true
