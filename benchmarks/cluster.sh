#!/usr/bin/env bash
# The swarm's throughput with the AI core on 1, 2 and 3 NAS: the cluster scenario's three simulated
# NAS (molecule/cluster), the same load each time (h2load on nas-cluster-3, HTTP/1.1, CLIENTS clients,
# REQUESTS short chat completions) through nas-cluster-3's swarm proxy, in one run. Prints requests/s,
# p50/p99 of the answered requests, non-200 answers, and where the replicas ran.
#   benchmarks/cluster.sh            (CLIENTS=16 REQUESTS=800 by default)
# Every NAS shares this machine's CPUs: more NAS add no CPU here, so the figures show the proxy's
# spread and its cost, not a real cluster's gain.
set -euo pipefail
cd "$(dirname "$0")/.."
export MOLECULE_GLOB='molecule/*/molecule.yml'
export PATH="$PWD/.venv/bin:$PATH"
clients=${CLIENTS:-16}
requests=${REQUESTS:-800}
key=robot-key-0123456789abcdef
body='{"messages":[{"role":"user","content":"load"}],"max_tokens":8}'

log=/tmp/cluster-benchmark-molecule.log
: > "$log"
quiet() { "$@" >>"$log" 2>&1 || { tail -n 40 "$log"; exit 1; }; }
quiet molecule destroy -s cluster
trap 'molecule destroy -s cluster >>"$log" 2>&1' EXIT
quiet molecule create -s cluster
quiet molecule prepare -s cluster
docker exec nas-cluster-3 sh -c "printf '%s' '$body' > /root/body.json"
printf '%-6s %-40s %8s %8s %8s %8s\n' "nodes" "replicas on" "req/s" "p50 ms" "p99 ms" "non-200"
for n in 1 2 3; do
  # Every NAS may run the AI core here; n replicas spread over n of them.
  quiet molecule converge -s cluster -- -e "{\"cluster_ai_node\": true, \"cluster_stack_ai_replicas\": $n}"
  placed=$(docker exec nas-cluster-1 docker service ps nasai_ai --filter desired-state=running \
             --format '{{.Node}}' | sort | tr '\n' ' ')
  docker exec nas-cluster-3 sh -c "rm -f /root/h2load.log; h2load --h1 -m 1 -t 1 -c $clients -n $requests \
      -d /root/body.json -H 'Content-Type: application/json' -H 'Authorization: Bearer $key' \
      --log-file=/root/h2load.log https://nas-cluster-3:9443/v1/chat/completions" > /tmp/cluster-h2load.out
  docker exec nas-cluster-3 cat /root/h2load.log | python3 -c '
import sys
rows = [line.split() for line in sys.stdin if len(line.split()) >= 3]
ok = sorted(int(r[2]) / 1000.0 for r in rows if r[1] == "200")
bad = sum(1 for r in rows if r[1] != "200")
span = (max(int(r[0]) + int(r[2]) for r in rows) - min(int(r[0]) for r in rows)) / 1e6
pct = lambda p: ok[min(len(ok) - 1, int(round(p / 100.0 * (len(ok) - 1))))]
print("%-6s %-40s %8.1f %8.0f %8.0f %8d" % (sys.argv[1], sys.argv[2], len(rows) / span, pct(50), pct(99), bad))
' "$n" "$placed"
done
