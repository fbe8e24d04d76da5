#!/usr/bin/env bash
# Run `molecule test` for each scenario given, continue past failures, then print a table of
# per-scenario wall times and results, and fail when any scenario failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# The scenarios live in molecule/, which this collection keeps on purpose: naming the glob stops
# Molecule from warning on every scenario that they "should migrate to 'extensions/molecule'".
# (molecule/default is an empty stub for Molecule's own lookup of a `default` scenario.)
export MOLECULE_GLOB=${MOLECULE_GLOB:-molecule/*/molecule.yml}
log_dir=${NASAI_LOG_DIR:-.cache/molecule-logs}
mkdir -p "$log_dir"
declare -a rows
failed=0
total_start=$(date +%s)
for scenario in "$@"; do
  start=$(date +%s)
  echo "=== molecule test -s $scenario"
  if molecule test -s "$scenario" 2>&1 | tee "$log_dir/$scenario.log"; then
    result=passed
  else
    result=FAILED
    failed=$((failed + 1))
  fi
  rows+=("$(printf '%-16s %6ss  %s' "$scenario" "$(( $(date +%s) - start ))" "$result")")
done
echo
echo "scenario          time   result"
printf '%s\n' "${rows[@]}"
printf '%-16s %6ss\n' total "$(( $(date +%s) - total_start ))"
# CI keeps only the end of the output: repeat, per failed scenario, the lines that say why
# (Ansible's fatal tasks and non-zero recaps, pytest's failures and their assertion lines).
for row in "${rows[@]}"; do
  case $row in
    *FAILED)
      scenario=${row%% *}
      echo
      echo "--- why $scenario failed (from $log_dir/$scenario.log)"
      sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^ *│ //' "$log_dir/$scenario.log" \
        | grep -E '^(fatal:|FAILED|ERROR |_{3,} test|E +(assert|AssertionError|\[ERROR\]|fatal|[A-Za-z]*Error))|failed=[1-9]|unreachable=[1-9]|CRITICAL' \
        | cut -c1-300 | tail -n 40
      ;;
  esac
done
passed=$(( $# - failed ))
echo "scenarios: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
