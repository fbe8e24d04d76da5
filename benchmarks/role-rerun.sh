#!/usr/bin/env bash
# Time the idempotent rerun of a role: converge its Molecule scenario once, then run the
# scenario's converge playbook again N times on one host and print each time, the median and the
# changed count (which must be 0). TARGETS.md: swap <= 3 s, docker <= 5 s.
#   benchmarks/role-rerun.sh SCENARIO [HOST] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: role-rerun.sh SCENARIO [HOST] [N]}
host=${2:-nas-$scenario}
runs=${3:-3}
export PATH="$PWD/.venv/bin:$PATH"
trap 'molecule destroy -s "$scenario" >/dev/null 2>&1' EXIT
molecule destroy -s "$scenario" >/dev/null 2>&1
molecule converge -s "$scenario" >/dev/null 2>&1
eph=$(find "$HOME/.ansible/tmp" -maxdepth 1 -name "molecule.*.$scenario" -printf '%T@ %p\n' | sort -rn | head -n1 | cut -d' ' -f2-)
times=()
for i in $(seq 1 "$runs"); do
  start=$(date +%s.%N)
  out=$(MOLECULE_EPHEMERAL_DIRECTORY=$eph MOLECULE_SCENARIO_NAME=$scenario ANSIBLE_CONFIG=$eph/ansible.cfg \
        ANSIBLE_COLLECTIONS_PATH="$HOME/.ansible/collections:$PWD/collections" \
        ansible-playbook -i "$eph/inventory" --limit "$host" "molecule/$scenario/converge.yml")
  end=$(date +%s.%N)
  t=$(echo "$end - $start" | bc -l)
  changed=$(echo "$out" | grep -E "^$host +:" | sed -E 's/.*changed=([0-9]+).*/\1/')
  printf 'run %d: %.2f s, changed=%s\n' "$i" "$t" "$changed"
  times+=("$t")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
printf '%s rerun on %s: median %.2f s over %d runs\n' "$scenario" "$host" "$median" "$runs"
