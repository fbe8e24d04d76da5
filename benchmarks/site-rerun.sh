#!/usr/bin/env bash
# Time site.yml's idempotent rerun on one converged NAS (molecule/site's Debian 12 host), for an
# earlier commit and for the working tree, side by side in one run: each tree converges its own
# two fresh NAS (timed: the first converge, TARGETS <= 2 min), then its converge playbook is rerun
# N times on one NAS alone. Prints each run's time, changed count (must be 0) and tasks
# run/skipped, and the medians. TARGETS: <= 12 s.
#   benchmarks/site-rerun.sh [REF] [N]      REF defaults to the commit before the rerun work.
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-230ead7}
runs=${2:-3}
host=nas-site-omv
root=$PWD
export PATH="$root/.venv/bin:$PATH"
old=$(mktemp -d /var/tmp/nasai-rerun.XXXXXX)
cleanup() {
  (cd "$old/tree" 2>/dev/null && molecule destroy -s site >/dev/null 2>&1) || true
  molecule destroy -s site >/dev/null 2>&1 || true
  git worktree remove --force "$old/tree" >/dev/null 2>&1 || true
  rm -rf "$old"
}
trap cleanup EXIT
git worktree add --detach "$old/tree" "$ref" >/dev/null 2>&1
# The earlier tree uses this checkout's virtual environment and image bundle.
ln -s "$root/.venv" "$old/tree/.venv"
ln -s "$root/.cache" "$old/tree/.cache"

measure() {  # measure LABEL DIR: converge DIR's site scenario, rerun it N times, print figures
  local label=$1 dir=$2 eph start end out t changed
  local -a times=()
  (cd "$dir" && molecule destroy -s site >/dev/null 2>&1; molecule create -s site >/dev/null 2>&1; molecule prepare -s site >/dev/null 2>&1)
  # The first converge: site.yml on both bare NAS at once (images from the bundle).
  start=$(date +%s.%N)
  (cd "$dir" && molecule converge -s site >/dev/null 2>&1)
  end=$(date +%s.%N)
  printf '%-8s first converge of 2 NAS: %6.1f s\n' "$label" "$(echo "$end - $start" | bc -l)"
  eph=$(find "$HOME/.ansible/tmp" -maxdepth 1 -name "molecule.*.site" -printf '%T@ %p\n' | sort -rn | head -n1 | cut -d' ' -f2-)
  for i in $(seq 1 "$runs"); do
    start=$(date +%s.%N)
    out=$(cd "$dir" && MOLECULE_EPHEMERAL_DIRECTORY=$eph MOLECULE_SCENARIO_NAME=site ANSIBLE_CONFIG=$eph/ansible.cfg \
          ANSIBLE_COLLECTIONS_PATH="$HOME/.ansible/collections:$dir/collections" ANSIBLE_FORCE_COLOR=0 \
          ansible-playbook -i "$eph/inventory" --limit "$host" molecule/site/converge.yml)
    end=$(date +%s.%N)
    t=$(echo "$end - $start" | bc -l)
    changed=$(echo "$out" | grep -E "^$host +:" | sed -E 's/.*changed=([0-9]+).*/\1/')
    printf '%-8s run %d: %6.2f s  changed=%s  %s\n' "$label" "$i" "$t" "$changed" \
      "$(echo "$out" | grep -E "^$host +:" | grep -oE 'ok=[0-9]+|skipped=[0-9]+' | tr '\n' ' ')"
    times+=("$t")
  done
  (cd "$dir" && molecule destroy -s site >/dev/null 2>&1)
  printf '%-8s median %.2f s over %d runs\n' "$label" \
    "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")" "$runs"
}

measure "$ref" "$old/tree" | tee "$old/before.txt"
measure working "$root" | tee "$old/after.txt"
echo
echo "site.yml rerun, one converged NAS ($host), machine load $(cut -d' ' -f1-3 /proc/loadavg):"
grep median "$old/before.txt" "$old/after.txt" | sed "s#$old/##"
