#!/usr/bin/env bash
# Build and serve a signed flat apt repository laid out like NVIDIA's Container Toolkit repository
# (<root>/stable/deb/<arch>/ with Packages, Release, InRelease: `deb <url>/<arch> /`), on
# http://127.0.0.1:PORT inside the host it runs on. Its nvidia-container-toolkit is a stand-in: an
# nvidia-ctk whose `cdi generate --output=FILE` writes a CDI spec for the GPUs nvidia-smi lists (with
# /dev/nvidia<index> and /dev/nvidiactl, as the real one does), and the toolkit's hook, which does
# nothing. The armored public key is written to <root>/key.asc. Needs the Debian mirror (apt-utils, gnupg).
#   nvidia_toolkit_repo.sh ROOT PORT
set -euo pipefail
root=${1:?usage: nvidia_toolkit_repo.sh ROOT PORT} port=${2:?usage: nvidia_toolkit_repo.sh ROOT PORT}
arch=$(dpkg --print-architecture)
export DEBIAN_FRONTEND=noninteractive GNUPGHOME=$root/.gnupg
apt-get update -qq
apt-get install -y -qq --no-install-recommends apt-utils gnupg >/dev/null
repo=$root/stable/deb/$arch
mkdir -p "$repo" "$GNUPGHOME"
chmod 700 "$GNUPGHOME"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/nvidia-container-toolkit
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin"
printf 'Package: nvidia-container-toolkit\nVersion: 1.17.8-1~nasai1\nArchitecture: %s\nMaintainer: nasai.stack tests <tests@nasai.invalid>\nDescription: test stand-in for the NVIDIA Container Toolkit\n' \
  "$arch" > "$pkg/DEBIAN/control"
cat > "$pkg/usr/bin/nvidia-ctk" <<'EOF'
#!/bin/sh
# Stand-in for nvidia-ctk (tests/harness/nvidia_toolkit_repo.sh): `cdi generate --output=FILE`.
set -eu
[ "${1:-} ${2:-}" = "cdi generate" ] || { echo "NVIDIA Container Toolkit CLI version 1.17.8 (nasai stand-in)"; exit 0; }
out=/dev/stdout
for arg in "$@"; do case $arg in --output=*) out=${arg#--output=} ;; esac; done
indexes=$(nvidia-smi --query-gpu=index --format=csv,noheader,nounits | cut -d, -f1)
{
  printf 'cdiVersion: "0.5.0"\nkind: nvidia.com/gpu\ndevices:\n'
  for i in $indexes; do
    printf '  - name: "%s"\n    containerEdits:\n      deviceNodes:\n        - path: /dev/nvidia%s\n' "$i" "$i"
  done
  printf '  - name: all\n    containerEdits:\n      deviceNodes:\n'
  for i in $indexes; do printf '        - path: /dev/nvidia%s\n' "$i"; done
  printf 'containerEdits:\n  env:\n    - NVIDIA_VISIBLE_DEVICES=void\n  deviceNodes:\n    - path: /dev/nvidiactl\n'
} > "$out"
EOF
printf '#!/bin/sh\ncat > /dev/null\nexit 0\n' > "$pkg/usr/bin/nvidia-container-runtime-hook"
chmod 755 "$pkg/usr/bin/nvidia-ctk" "$pkg/usr/bin/nvidia-container-runtime-hook"
dpkg-deb -b "$pkg" "$repo/nvidia-container-toolkit_1.17.8-1~nasai1_$arch.deb" >/dev/null
(cd "$repo" && apt-ftparchive packages . > Packages && gzip -kf Packages && apt-ftparchive release . > "$work/Release")
mv "$work/Release" "$repo/Release"
gpg --batch --quiet --passphrase '' --quick-gen-key 'nasai.stack test NVIDIA repository' ed25519 sign never
gpg --batch --quiet --yes --clearsign -o "$repo/InRelease" "$repo/Release"
gpg --batch --quiet --yes -abs -o "$repo/Release.gpg" "$repo/Release"
gpg --batch --armor --export > "$root/key.asc"
systemd-run --unit nasai-nvidia-repo --property=WorkingDirectory="$root" \
  python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null
for _ in $(seq 1 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/stable/deb/$arch/InRelease')" \
    2>/dev/null && exit 0
  sleep 0.2
done
echo "the repository did not answer on port $port" >&2
exit 1
