#!/usr/bin/env bash
# Build and serve a real, signed apt repository laid out like Docker's own
# (<root>/linux/debian/dists/<suite>/stable/binary-<arch>/), on http://127.0.0.1:PORT inside the
# host it runs on. Its docker-ce is Debian's docker.io repackaged under Docker's package names
# (the engine really installs and runs from it); docker-ce-cli, containerd.io,
# docker-buildx-plugin and docker-compose-plugin are empty packages. The armored public key is
# written to <root>/key.asc. Needs the Debian mirror (apt-utils, gnupg, the docker.io .deb).
#   signed_apt_repo.sh ROOT PORT
set -euo pipefail
root=${1:?usage: signed_apt_repo.sh ROOT PORT} port=${2:?usage: signed_apt_repo.sh ROOT PORT}
. /etc/os-release
suite=$VERSION_CODENAME arch=$(dpkg --print-architecture)
export DEBIAN_FRONTEND=noninteractive GNUPGHOME=$root/.gnupg
apt-get update -qq
apt-get install -y -qq --no-install-recommends apt-utils gnupg >/dev/null
base=$root/linux/debian pool=$root/linux/debian/pool/stable
mkdir -p "$pool" "$base/dists/$suite/stable/binary-$arch" "$GNUPGHOME"
chmod 700 "$GNUPGHOME"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq docker.io)
dpkg-deb -R "$work"/docker.io_*.deb "$work/engine"
version="5:$(dpkg-deb -f "$work"/docker.io_*.deb Version | sed 's/^[0-9]*://')~nasai1"
sed -i -e 's/^Package: docker.io$/Package: docker-ce/' -e "s/^Version: .*/Version: $version/" \
  -e '/^Conflicts:/d' -e '/^Replaces:/d' -e '/^Breaks:/d' -e '/^Provides:/d' "$work/engine/DEBIAN/control"
printf 'Conflicts: docker.io\nReplaces: docker.io\n' >> "$work/engine/DEBIAN/control"
dpkg-deb -b -Zxz "$work/engine" "$pool/docker-ce_${version#*:}_$arch.deb" >/dev/null
for name in docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin; do
  mkdir -p "$work/$name/DEBIAN"
  printf 'Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: nasai.stack tests <tests@nasai.invalid>\nDescription: test stand-in for %s\n' \
    "$name" "$version" "$arch" "$name" > "$work/$name/DEBIAN/control"
  dpkg-deb -b "$work/$name" "$pool/${name}_${version#*:}_$arch.deb" >/dev/null
done
(cd "$base" && apt-ftparchive packages pool > "dists/$suite/stable/binary-$arch/Packages")
gzip -kf "$base/dists/$suite/stable/binary-$arch/Packages"
apt-ftparchive -o "APT::FTPArchive::Release::Suite=$suite" -o "APT::FTPArchive::Release::Codename=$suite" \
  -o APT::FTPArchive::Release::Components=stable -o "APT::FTPArchive::Release::Architectures=$arch" \
  release "$base/dists/$suite" > "$work/Release"
mv "$work/Release" "$base/dists/$suite/Release"
gpg --batch --quiet --passphrase '' --quick-gen-key 'nasai.stack test repository' ed25519 sign never
gpg --batch --quiet --yes --clearsign -o "$base/dists/$suite/InRelease" "$base/dists/$suite/Release"
gpg --batch --quiet --yes -abs -o "$base/dists/$suite/Release.gpg" "$base/dists/$suite/Release"
gpg --batch --armor --export > "$root/key.asc"
systemd-run --unit nasai-apt-repo --property=WorkingDirectory="$root" \
  python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null
for _ in $(seq 1 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/linux/debian/dists/$suite/InRelease')" \
    2>/dev/null && exit 0
  sleep 0.2
done
echo "the repository did not answer on port $port" >&2
exit 1
