#!/usr/bin/env bash
# The demo: start simulated NAS hosts, run site.yml on them, then run it again to show that a
# second run changes nothing. The hosts stay up for a look around (`make demo-down` removes them).
set -euo pipefail
cd "$(dirname "$0")/../.."
inventory=inventories/demo/hosts.yml
ansible-playbook -i "$inventory" tests/demo/up.yml
ansible-playbook -i "$inventory" site.yml
echo "=== second run: expect changed=0 on every host"
ansible-playbook -i "$inventory" site.yml | tee .cache/demo-rerun.log | sed -n '/PLAY RECAP/,/^$/p'
if grep -E 'changed=[1-9]' .cache/demo-rerun.log; then
  echo "demo: the second run changed something" >&2
  exit 1
fi
echo "demo: done. Look around with: docker exec -it nas-demo-omv bash"
