# shellcheck shell=bash
# Shared by the tests/images/build-*.sh scripts (source it): every test image is cached under a
# tag made from a hash of its recipe, so an unchanged recipe is never rebuilt.

# nasai_hash [FILE...]: 12 hex digits of the files' contents and of what is piped in.
nasai_hash() {
  { cat "$@"; cat; } | sha256sum | cut -c1-12
}

# nasai_cached IMAGE FINAL: when IMAGE exists, tag it FINAL (what the tests use) and say so.
nasai_cached() {
  docker image inspect "$1" >/dev/null 2>&1 || return 1
  docker tag "$1" "$2"
  echo "$2 is current ($1)"
}

# nasai_build_on NAME FINAL_TAG BASE CONTEXT_DIR: `docker build` CONTEXT_DIR with --build-arg
# BASE=BASE as nasai/NAME:<hash>, the hash covering the calling script, this file, the context's
# files and BASE's image id; skipped when that tag exists. The simulated NAS base is built first
# when missing.
nasai_build_on() {
  local name=$1 final=$2 base=$3 context=$4 hash tag start
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    case "$base" in
      nasai/nas:*) "$(dirname "${BASH_SOURCE[0]}")/build-nas.sh" "${base#nasai/nas:}" ;;
      *) echo "base image $base is missing" >&2; return 1 ;;
    esac
  fi
  hash=$(docker image inspect -f '{{.Id}}' "$base" | nasai_hash "$0" "${BASH_SOURCE[0]}" "$context"/*)
  tag="nasai/${name}:${hash}"
  nasai_cached "$tag" "$final" && return 0
  start=$(date +%s)
  docker build -q --build-arg "BASE=$base" -t "$tag" "$context" >/dev/null
  docker tag "$tag" "$final"
  echo "built $final ($tag) in $(( $(date +%s) - start ))s"
}
