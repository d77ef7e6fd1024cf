#!/usr/bin/env bash
# Runs `molecule test` for every scenario under molecule/ (or only those in MOLECULE_SCENARIOS="node cluster"),
# one after the other, and fails if any scenario fails. Every scenario runs its full sequence, idempotence included.
set -uo pipefail

cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/lab/containers.conf}"
export ANSIBLE_CONFIG="${ANSIBLE_CONFIG:-$PWD/ansible.cfg}"
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"

if [ -n "${MOLECULE_SCENARIOS:-}" ]; then
  read -r -a scenarios <<<"$MOLECULE_SCENARIOS"
else
  scenarios=()
  for file in molecule/*/molecule.yml; do
    [ -e "$file" ] && scenarios+=("$(basename "$(dirname "$file")")")
  done
fi
if [ ${#scenarios[@]} -eq 0 ]; then
  echo "molecule-all: no scenarios found under molecule/" >&2
  exit 1
fi

failed=()
for scenario in "${scenarios[@]}"; do
  if [ ! -f "molecule/$scenario/molecule.yml" ]; then
    echo "molecule-all: no scenario molecule/$scenario" >&2
    failed+=("$scenario")
    continue
  fi
  echo "=== molecule test -s $scenario"
  start=$SECONDS
  if molecule test -s "$scenario"; then
    echo "=== $scenario passed in $((SECONDS - start)) s"
  else
    echo "=== $scenario FAILED after $((SECONDS - start)) s" >&2
    failed+=("$scenario")
  fi
done

echo "molecule-all: $(( ${#scenarios[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
