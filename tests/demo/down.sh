#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/../.."
ansible-playbook -i inventories/demo/hosts.yml tests/demo/down.yml
