#!/usr/bin/env bash
# promtool and amtool (Prometheus's and Alertmanager's checkers) and mtail for the unit tests of the
# observability role's rules, routing and per-route log program: taken out of Debian's packages with `apt-get download`
# and `dpkg-deb -x` into .cache/tools/bin, not installed (no daemon is started, nothing else
# changes on the machine). Quick when they are there already.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=$here/.cache/tools/bin
if [ -x "$bin/promtool" ] && [ -x "$bin/amtool" ] && [ -x "$bin/mtail" ]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus prometheus-alertmanager mtail >/dev/null 2>&1; then
  # A fresh machine may not have read the package lists yet.
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
  apt-get download prometheus prometheus-alertmanager mtail >/dev/null
fi
for deb in ./*.deb; do
  dpkg-deb -x "$deb" root
done
mkdir -p "$bin"
install -m 0755 root/usr/bin/promtool root/usr/bin/amtool root/usr/bin/mtail "$bin/"
echo "prometheus-tools: $("$bin/promtool" --version 2>&1 | head -n1)"
