# Sourced by the add-on artifact scripts (calico-crds.sh, calico-images.sh, metallb.sh, traefik.sh): the steps each
# of them takes the same way, so that a fix lands once. Each script sets, before it calls any of these:
#
#   NAME              short name for messages and the lock file (metallb, traefik, ...)
#   OUT               the finished directory, $ARCHIPELAGO_CACHE/artifacts/<name>-<version>
#   WANTED_VERSIONS   the stamp (key=value lines) a finished OUT holds in OUT/VERSIONS
#
# and then runs, in this order:
#
#   artifacts_begin            exit 0 if OUT is up to date; else set up Go and podman, take the lock, make $WORK
#   module_copy MOD@VER DIR    a writable copy of a Go module (for builds that may touch go.mod or go.sum)
#   image_save REF FILE CTX    build an image from a context directory and save it as $WORK/images/FILE
#   artifacts_finish           checksums, the stamp (last), and the rename of $WORK to OUT
#
# Everything they write lies under $ARCHIPELAGO_CACHE. Go runs with the same settings as scripts/build-artifacts.sh.
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"

ARTIFACTS_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ARCHIPELAGO_CACHE=${ARCHIPELAGO_CACHE:-/var/cache/archipelago}
ARCHIPELAGO_FORCE=${ARCHIPELAGO_FORCE:-0}            # 1: rebuild even if VERSIONS matches
NICE=${ARCHIPELAGO_NICE:-10}                         # the compilers share the machine

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# step NAME: print a header; step_done prints how long the step took.
step() { STEP_NAME=$1; STEP_START=$SECONDS; log "==> $1"; }
step_done() { log "    $STEP_NAME: $((SECONDS - STEP_START)) s"; }

artifacts_up_to_date() {
    [[ $ARCHIPELAGO_FORCE != 1 && -f $OUT/VERSIONS ]] && [[ $(<"$OUT/VERSIONS") == "$WANTED_VERSIONS" ]]
}

# A warm machine stops at once, before touching Go, podman or the lock. Otherwise: the Go to build with
# (scripts/go-toolchain.py), the Go and podman settings, one run per NAME at a time (a second caller waits, then
# finds the work done), and an empty $WORK (with images/ and stage/) that artifacts_finish turns into OUT.
artifacts_begin() {
    if artifacts_up_to_date; then
        log "$NAME artifacts up to date: $OUT"
        exit 0
    fi
    local go
    go=$(ARCHIPELAGO_CACHE=$ARCHIPELAGO_CACHE "$ARTIFACTS_SCRIPT_DIR/../go-toolchain.py") ||
        die "no usable Go, see the line above"
    PATH=$(dirname "$go"):$PATH
    export PATH
    unset GOROOT                                     # each Go finds its own tree
    export GOMODCACHE=$ARCHIPELAGO_CACHE/go/mod GOCACHE=$ARCHIPELAGO_CACHE/go/build
    export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local GOWORK=off
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$ARTIFACTS_SCRIPT_DIR/../../lab/containers.conf}
    command -v podman >/dev/null || die "podman not found (apt-get install podman runc)"
    mkdir -p "$GOMODCACHE" "$GOCACHE" "$ARCHIPELAGO_CACHE/artifacts" "$ARCHIPELAGO_CACHE/src"
    cd "$ARCHIPELAGO_CACHE"                          # never inside some other Go module

    exec 7>"$ARCHIPELAGO_CACHE/.$NAME.lock"
    if ! flock -n 7; then
        log "waiting for another $NAME run"
        flock 7
    fi
    if artifacts_up_to_date; then
        log "$NAME artifacts up to date: $OUT"
        exit 0
    fi
    ARTIFACTS_START=$SECONDS
    WORK=$OUT.tmp
    STAGE=$WORK/stage                                # binaries that only go into images
    rm -rf "$WORK"
    mkdir -p "$WORK/images" "$STAGE"
}

# module_field MODULE@VERSION FIELD: download a module into GOMODCACHE and print one field of `go mod download -json`
# (Dir, GoMod, Info, Sum, ...). Dies when the proxy refuses the module.
module_field() {
    local json value
    json=$(go mod download -json "$1") || die "cannot download $1: $json"
    value=$(sed -n "s/^\t\"$2\": \"\(.*\)\",\?$/\1/p" <<<"$json")
    [[ -n $value ]] || die "go mod download printed no $2 for $1"
    printf '%s\n' "$value"
}

# module_copy MODULE@VERSION DIR [SUM]: a writable copy of the module at DIR, made once (the module cache is read-only,
# and `-mod=mod` may update go.sum). With SUM, the module's checksum must be SUM. DIR/.archipelago-source records the
# checksum the copy was made from; a copy of another one is made afresh.
module_copy() {
    local module=$1 dir=$2 want=${3:-} sum src
    sum=$(module_field "$module" Sum)
    [[ -z $want || $sum == "$want" ]] || die "$module has checksum $sum, expected $want"
    if [[ -f $dir/.archipelago-source && $(<"$dir/.archipelago-source") == "$sum" ]]; then
        return 0
    fi
    src=$(module_field "$module" Dir)
    [[ -d $src ]] || die "go mod download gave $src for $module, which is no directory"
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$dir.tmp"
    cp -r "$src/." "$dir.tmp/"
    chmod -R u+w "$dir.tmp"
    printf '%s\n' "$sum" >"$dir.tmp/.archipelago-source"
    mv "$dir.tmp" "$dir"
}

# image_save REF FILE CONTEXT [CONTAINERFILE [podman build args...]]: build REF from the directory CONTEXT (with
# CONTEXT/Containerfile unless CONTAINERFILE is given), save it as the docker-archive $WORK/images/FILE, and list it in
# $WORK/images/images.txt ("<full image ref> <file name>", what the roles import). Nothing is pulled.
image_save() {
    local ref=$1 file=$2 context=$3 containerfile=${4:-$3/Containerfile}
    shift 3
    (($# == 0)) || shift
    log "    $ref"
    podman build -q --pull=never "$@" -f "$containerfile" -t "$ref" "$context" >/dev/null
    podman save -q --format docker-archive -o "$WORK/images/$file" "$ref"
    printf '%s %s\n' "$ref" "$file" >>"$WORK/images/images.txt"
}

# entrypoint_context BINARY DIR: a build context holding BINARY and a Containerfile that runs it from an empty image
# as /<its name> (Containerfile.entrypoint with ${NAME} filled in: an exec-form ENTRYPOINT expands no build argument).
entrypoint_context() {
    local binary=$1 dir=$2 name
    name=$(basename "$binary")
    mkdir -p "$dir"
    cp "$binary" "$dir/"
    sed "s/\${NAME}/$name/g" "$ARTIFACTS_SCRIPT_DIR/Containerfile.entrypoint" >"$dir/Containerfile"
}

# The stamp is written last and the directory renamed into place at the very end: OUT is complete or absent.
artifacts_finish() {
    rm -rf "$STAGE" "$WORK"/context-*
    (cd "$WORK" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum) >"$WORK/SHA256SUMS"
    printf '%s\n' "$WANTED_VERSIONS" >"$WORK/VERSIONS"
    if [[ -e $OUT ]]; then
        mv "$OUT" "$OUT.old.$$"
        rm -rf "$OUT.old.$$"
    fi
    mv "$WORK" "$OUT"
    log "$NAME artifacts ready: $OUT (built in $((SECONDS - ARTIFACTS_START)) s)"
}
