#!/usr/bin/env bash
# What this machine needs before `make demo` or `make test` can run, started the same way for every
# entry point (.ci/run, the Makefile): the Debian packages that are missing (Docker engine and
# client, debootstrap for the test images, make, shellcheck for the sanity tests, python3-venv;
# with --browser also headless Chromium for the browser test), then a Docker engine when none
# answers. Idempotent and quick when everything is there already.
#
#   tests/setup-machine.sh [--browser]
set -euo pipefail

browser=false
for arg in "$@"; do
  case $arg in
    --browser) browser=true ;;
    *) echo "usage: $0 [--browser]" >&2; exit 2 ;;
  esac
done

log() { echo "setup-machine: $*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    log "needs root (or sudo) for: $*" >&2
    exit 1
  fi
}

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v make >/dev/null || missing+=(make)
command -v shellcheck >/dev/null || missing+=(shellcheck)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if $browser && ! command -v chromium >/dev/null; then
  # Fonts so the screenshots show text rather than empty boxes.
  missing+=(chromium fonts-dejavu-core)
fi
# The chat test drives the browser (sign in, type, send) through WebDriver: Debian's driver matches
# its chromium.
if $browser && ! command -v chromedriver >/dev/null; then
  missing+=(chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A Docker engine: the one already answering, else the system's service, else dockerd by hand
# (containers and CI machines without systemd).
if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && systemctl cat docker.service >/dev/null 2>&1; then
    log "starting docker.service"
    as_root systemctl start docker.service || true
  fi
  if ! docker info >/dev/null 2>&1 && ! pgrep -x dockerd >/dev/null; then
    log "starting dockerd (log: /var/log/nasai-dockerd.log)"
    as_root sh -c 'nohup dockerd >/var/log/nasai-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "no Docker engine answers after 60 s; see /var/log/nasai-dockerd.log" >&2
    docker info >/dev/null
  fi
  log "Docker engine $(docker version --format '{{.Server.Version}}') answers"
fi
