# Sourced by scripts/build-artifacts.sh and scripts/artifacts/calico-crds.sh: `version NAME` prints NAME's value from
# versions.yml at the top of the repository, the one file that pins every version (the roles read it too).
ARCHIPELAGO_VERSIONS_FILE=${ARCHIPELAGO_VERSIONS_FILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/versions.yml}

version() {
    local value
    value=$(sed -n -E "s/^$1:[[:space:]]*\"?([^\"#[:space:]]+)\"?.*/\1/p" "$ARCHIPELAGO_VERSIONS_FILE")
    if [[ -z $value ]]; then
        printf 'error: %s has no line "%s: <version>"\n' "$ARCHIPELAGO_VERSIONS_FILE" "$1" >&2
        return 1
    fi
    printf '%s\n' "$value"
}
