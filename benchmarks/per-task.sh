#!/usr/bin/env bash
# Ansible's cost per task on simulated NAS containers, side by side in one run (TARGETS.md rows 1-2):
# 30 stat tasks on 1 host with each connection setting, then the same 30 tasks on 4 hosts vs 1
# (forks 5). Prints seconds per task (median of N runs, ansible-playbook start-up included) and the
# 4-host/1-host ratio.   benchmarks/per-task.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
work=$(mktemp -d)
hosts=(nas-bench-1 nas-bench-2 nas-bench-3 nas-bench-4)
cleanup() {
  for h in "${hosts[@]}"; do docker rm -f "$h" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for h in "${hosts[@]}"; do
  docker run -d --name "$h" --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock nasai/nas:bookworm >/dev/null
done
{
  printf -- '- hosts: all\n  gather_facts: false\n  tasks:\n'
  for i in $(seq 1 30); do printf '    - name: Task %s\n      ansible.builtin.stat:\n        path: /etc/hostname\n' "$i"; done
} > "$work/tasks.yml"

median() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
# time_tasks INVENTORY CONNECTION PIPELINING: median wall seconds of the 30-task play.
time_tasks() {
  for _ in $(seq 1 "$runs"); do
    start=$(date +%s.%N)
    ANSIBLE_PIPELINING=$3 ansible-playbook -f 5 -i "$1" -c "$2" "$work/tasks.yml" >/dev/null
    echo "$(date +%s.%N) - $start" | bc -l
  done | median
}
one="${hosts[0]},"
all=$(IFS=,; echo "${hosts[*]},")
printf '%-40s %10s\n' "connection, pipelining (1 host)" "s/task"
for conn in community.docker.docker community.docker.docker_api; do
  for pipelining in false true; do
    t=$(time_tasks "$one" "$conn" "$pipelining")
    printf '%-40s %10.3f\n' "$conn, $pipelining" "$(echo "$t / 30" | bc -l)"
  done
done
t1=$(time_tasks "$one" community.docker.docker true)
t4=$(time_tasks "$all" community.docker.docker true)
printf '30 tasks: 1 host %.2f s, 4 hosts %.2f s, ratio %.2fx (forks 5, docker, pipelining)\n' \
  "$t1" "$t4" "$(echo "$t4 / $t1" | bc -l)"
