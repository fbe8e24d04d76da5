#!/usr/bin/env bash
# The demo: start simulated NAS hosts, run site.yml on them, then run it again to show that a
# second run changes nothing; end with the URLs to open from this machine's browser. The hosts stay
# up for a look around (`make demo-down` removes them).
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
# Ask each NAS's assistant over HTTPS through its proxy, checking the certificate with the local CA.
ask='import json, ssl, urllib.request
ctx = ssl.create_default_context(cafile="/srv/dev-disk-by-label-data/container/services/tls/ca.crt")
body = json.dumps({"messages": [{"role": "user", "content": "Hello NAS"}], "max_tokens": 8}).encode()
# The admin key the services role generated (root only): no request passes the proxy without a key.
key = open("/srv/dev-disk-by-label-data/container/services/secrets/user-admin.key").read().strip()
req = urllib.request.Request("https://localhost/v1/chat/completions", data=body,
                             headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
answer = json.load(urllib.request.urlopen(req, context=ctx, timeout=60))
print(answer["model"], answer["usage"])'
for nas in nas-demo-omv nas-demo-trixie; do
  echo "=== $nas: chat completion through https://localhost"
  docker exec "$nas" python3 -c "$ask"
done
# A backup now, to both repositories (cron runs it each night), and what its status says.
for nas in nas-demo-omv nas-demo-trixie; do
  echo "=== $nas: a backup to the second medium and the off-site box (nasai-backup run)"
  docker exec "$nas" nasai-backup run
done
# Each NAS's HTTPS port is published on this machine's loopback; its CA goes to .cache/demo/.
ansible-playbook -i "$inventory" tests/demo/urls.yml
echo "=== open from this machine's browser"
cat .cache/demo/urls.txt
echo "demo: done. Open the URLs above in this machine's browser; a shell: docker exec -it nas-demo-omv bash"
