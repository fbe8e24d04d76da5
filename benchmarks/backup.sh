#!/usr/bin/env bash
# The backup role's job against restic by hand, on the same kind of repositories and the same data
# (TARGETS: 4 x 200 MiB random "models" + 2,000 small configs, 808 MiB): a simulated NAS with the
# data on a Docker volume and its second medium (a tmpfs) for the local repository, and the off-site
# box's restic REST server (tests/images/build-offsite.sh) on a network of their own.
#
#   by hand:  restic backup to the local repository, then to the off-site one (an admin's script)
#   the job:  nasai-backup run (both legs at once, then forget/prune with the role's retention)
#
# Each side has its own pair of fresh repositories. Prints the first run and the unchanged rerun of
# each, the ratios (target: job <= 1.1 x by hand; unchanged rerun to both <= 3 s), then the job's
# restore drill from each repository (MiB/s, and whether the restored files are byte-identical)
# and the check of 10 % of the data.
#   benchmarks/backup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
net=nasai-bench-backup nas=nasai-bench-backup-nas offsite=nasai-bench-backup-offsite
data=/srv/data/container/services

cleanup() {
  docker rm -f "$nas" "$offsite" >/dev/null 2>&1 || true
  docker volume rm -f nasai-bench-backup-data >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
}
# NASAI_BENCH_KEEP=1 leaves the containers there to look at (the next run removes them).
[ "${NASAI_BENCH_KEEP:-0}" = 1 ] || trap cleanup EXIT
cleanup
tests/images/build-offsite.sh >/dev/null

docker network create "$net" >/dev/null
caps=$(python3 -c "import yaml; print(' '.join('--cap-add=' + c for c in yaml.safe_load(open('tests/harness/nas_container_defaults.yml'))['nasai_nas_capabilities']))")
for name in "$nas" "$offsite"; do
  image=nasai/nas:bookworm extra=(-v nasai-bench-backup-data:/srv/data --tmpfs /srv/backup:size=3g)
  [ "$name" = "$offsite" ] && image=nasai/offsite:trixie extra=()
  # shellcheck disable=SC2086
  docker run -d --name "$name" --hostname "$name" --network "$net" $caps \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cgroupns host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock "${extra[@]}" \
    -e container=docker --stop-signal SIGRTMIN+3 "$image" /lib/systemd/systemd >/dev/null
done
for name in "$nas" "$offsite"; do
  docker exec "$name" systemctl is-system-running --wait >/dev/null 2>&1 || true
done
for user in bench-hand bench-job; do
  echo "pass-$user-0123456789" | docker exec -i "$offsite" htpasswd -B -i /etc/restic/htpasswd "$user" 2>/dev/null
done
docker exec "$offsite" systemctl restart nasai-rest-server

echo "== data: 4 x 200 MiB random models + 2,000 small configs"
docker exec "$nas" bash -c "
  mkdir -p $data/data/models $data/config/bench
  for i in 1 2 3 4; do head -c 200M /dev/urandom > $data/data/models/model\$i.gguf; done
  for i in \$(seq 1 2000); do head -c 2048 /dev/urandom | base64 > $data/config/bench/app\$i.yml; done
  du -sh $data | cut -f1"

echo "== the role on the NAS (restic from Debian)"
cat > /tmp/nasai-bench-backup.yml <<'EOF'
- name: The backup role, for the benchmark
  hosts: all
  gather_facts: false
  roles:
    - role: nasai.stack.backup
      vars:
        backup_project_dir: /srv/data/container/services
        backup_local_repository: /srv/backup/job
        backup_offsite_repository: rest:http://nasai-bench-backup-offsite:8000/bench-job/
        backup_offsite_rest_user: bench-job
        backup_offsite_rest_password: pass-bench-job-0123456789
        backup_password: bench-repository-password
        backup_databases: []
        backup_metrics_dir: ""
EOF
ANSIBLE_COLLECTIONS_PATH="$PWD/collections" ansible-playbook -i "$nas," -c community.docker.docker \
  /tmp/nasai-bench-backup.yml >/tmp/nasai-bench-backup.log 2>&1 || { tail -30 /tmp/nasai-bench-backup.log; exit 1; }
docker exec "$nas" restic version

# By hand: the same two kinds of repositories, their own pair.
docker exec "$nas" bash -c "
  echo bench-repository-password > /root/hand.pw
  echo rest:http://bench-hand:pass-bench-hand-0123456789@$offsite:8000/bench-hand/ > /root/hand.offsite
  chmod 600 /root/hand.*
  restic -q --password-file /root/hand.pw -r /srv/backup/hand init >/dev/null
  restic -q --password-file /root/hand.pw --repository-file /root/hand.offsite init >/dev/null"

timed() {  # seconds a command takes in the NAS
  docker exec "$nas" bash -c "s=\$EPOCHREALTIME; $1 >/dev/null 2>&1 || echo FAILED: $1 >&2; e=\$EPOCHREALTIME; python3 -c \"print(\$e - \$s)\""
}
hand="restic -q --password-file /root/hand.pw -r /srv/backup/hand backup $data \
  && restic -q --password-file /root/hand.pw --repository-file /root/hand.offsite backup $data"
job="/usr/local/sbin/nasai-backup run"

docker exec "$nas" sync
hand1=$(timed "$hand"); job1=$(timed "$job")
hand2=$(timed "$hand"); job2=$(timed "$job")
printf '\n%-34s %10s %10s %8s\n' "both repositories (local + off-site)" "by hand" "the job" "ratio"
printf '%-34s %9.2fs %9.2fs %7.2fx\n' "first run (808 MiB)" "$hand1" "$job1" "$(python3 -c "print($job1 / $hand1)")"
printf '%-34s %9.2fs %9.2fs %7.2fx\n' "unchanged rerun" "$hand2" "$job2" "$(python3 -c "print($job2 / $hand2)")"
docker exec "$nas" /usr/local/sbin/nasai-backup status | python3 -c "
import json, sys
for s in json.load(sys.stdin):
    print('  job leg %-8s exit %s, %.2f s, %d bytes added in the last run' % (s['repository'], s['last_exit_code'], s['duration_seconds'], s['bytes_added']))"

echo
for repo in local offsite; do
  docker exec "$nas" /usr/local/sbin/nasai-backup drill --repository "$repo" --target /srv/data/restore | python3 -c "
import json, sys
r = json.load(sys.stdin)
print('restore from %-8s %d files, %.0f MiB in %.2f s: %.0f MiB/s; differences from the live data: %d; databases: %s' % (
    r['repository'], r['restored_files'], r['restored_bytes'] / 1048576, r['restore_seconds'], r['mib_per_second'],
    r['differences'], ', '.join(r['database_copies'].values()) or 'none'))"
done
check=$(timed "/usr/local/sbin/nasai-backup check --subset 10%")
printf 'check reading 10%% of both repositories: %.2f s\n' "$check"
