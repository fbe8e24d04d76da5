#!/usr/bin/env bash
# Load benchmark of the services stack (issue 10): converge the `services` scenario's simulated NAS
# (2 llama-server replicas with 2 slots each behind HAProxy, production admission defaults), then
# run h2load inside the NAS on loopback, direct to the AI core (127.0.0.1:8081, replica 1 only) and
# through the TLS proxy, for each level of concurrent clients: HTTP/1.1, one request per connection
# at a time, max(2 x clients, 600) requests, each level bounded to SECONDS. Prints requests/s, p50/p99
# of the answered requests, answered, queued-then-answered (HAProxy log: Tw > 0), shed (429/503),
# errors, cut (requests h2load's own time bound ended), AI core restarts, peak pids and memory;
# GET /health proxy vs direct; time to first streamed token proxy vs direct; then the same 400 clients
# through HAProxy and through nginx (the mechanism's choice), with --soak a soak at 300 clients, and
# last the time to first token again on a model of a small real model's size (sized_gguf.py), which
# --no-sized leaves out.
#   benchmarks/load.sh [--levels 50,300,1000,2000] [--seconds 60] [--soak [SECONDS]] [--no-compare] [--no-sized]
set -euo pipefail
cd "$(dirname "$0")/.."
levels=50,300,1000,2000 seconds=60 soak=0 compare=1 sized=1
while [ $# -gt 0 ]; do
  case "$1" in
    --levels) levels=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --soak) soak=600; if [[ ${2:-} =~ ^[0-9]+$ ]]; then soak=$2; shift; fi ;;
    --no-compare) compare=0 ;;
    --no-sized) sized=0 ;;
    *) echo "usage: $0 [--levels 50,300,1000,2000] [--seconds 60] [--soak [SECONDS]] [--no-compare] [--no-sized]" >&2
       exit 2 ;;
  esac
  shift
done
export PATH="$PWD/.venv/bin:$PATH"
scenario=services host=nas-services
trap 'molecule destroy -s "$scenario" >/dev/null 2>&1' EXIT
molecule destroy -s "$scenario" >/dev/null 2>&1
molecule converge -s "$scenario" >/dev/null 2>&1
eph=$(find "$HOME/.ansible/tmp" -maxdepth 1 -name "molecule.*.$scenario" -printf '%T@ %p\n' | sort -rn | head -n1 | cut -d' ' -f2-)
converge() {  # converge.yml again with extra variables (JSON)
  MOLECULE_EPHEMERAL_DIRECTORY=$eph MOLECULE_SCENARIO_NAME=$scenario ANSIBLE_CONFIG=$eph/ansible.cfg \
    MOLECULE_PROJECT_DIRECTORY=$PWD ANSIBLE_COLLECTIONS_PATH="$HOME/.ansible/collections:$PWD/collections" \
    ansible-playbook -i "$eph/inventory" --limit "$host" "molecule/$scenario/converge.yml" -e "$1" >/dev/null
}
# The scenario shortens the AI queue for its burst test: back to the role's default (512). Its slots
# hold 128 tokens; the time to first token of a chat's prompt (some 200 tokens) needs more (the test
# model holds 256).
converge '{"services_ai_queue_length": 512, "services_ai_slot_context": 512}'
docker cp benchmarks/load_driver.py "$host:/tmp/load_driver.py"
echo "== $(docker exec "$host" h2load --version | head -n1); each level bounded to ${seconds} s"
docker exec "$host" python3 /tmp/load_driver.py "$levels" "$seconds" "$soak"
if [ "$compare" = 1 ]; then
  echo "== the mechanism: the same 400 clients through each proxy engine"
  docker exec "$host" python3 /tmp/load_driver.py compare "$seconds" haproxy
  converge '{"services_ai_queue_length": 512, "services_proxy_engine": "nginx"}'
  docker exec "$host" python3 /tmp/load_driver.py compare "$seconds" nginx
fi
if [ "$sized" = 1 ]; then
  # The model is made once, with the gguf writer the test image uses (at the version its build
  # pins), in a virtual environment of its own (kept under /var/tmp for the next run).
  gen=/var/tmp/nasai-gguf model=/var/tmp/nasai-sized.gguf
  gguf_version=$(sed -n 's/^GGUF_VERSION=//p' tests/images/build-llama.sh)
  if [ ! -s "$model" ]; then
    [ -x "$gen/bin/python" ] || { python3 -m venv "$gen" && "$gen/bin/pip" install --quiet "gguf==$gguf_version"; }
    "$gen/bin/python" benchmarks/sized_gguf.py "$model.part" && mv "$model.part" "$model"
  fi
  docker cp "$model" "$host:/srv/models/sized.gguf"
  # Its weights (some 480 MB) and two slots of 1,024 tokens in each replica's quota.
  converge '{"services_ai_queue_length": 512, "services_proxy_engine": "haproxy", "services_ai_model": "sized.gguf",
             "services_ai_model_memory": "512m", "services_ai_slot_context": 1024, "services_ai_slot_memory": "128m",
             "services_ai_memory": "1g", "services_ai_model_layers": 30}'
  echo "== a model of SmolLM-135M's size (random weights, $(du -m "$model" | cut -f1) MB)"
  docker exec "$host" python3 /tmp/load_driver.py ttft 30 "the 135M-size model"
fi
