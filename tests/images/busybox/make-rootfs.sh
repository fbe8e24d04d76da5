#!/bin/sh
# Runs inside a throwaway simulated NAS container: unpack Debian's static busybox into /out/rootfs
# with the applet links a test container needs, as a tarball for `docker import`.
set -eu
cd /tmp
apt-get update -qq
apt-get download busybox-static >/dev/null
dpkg-deb -x busybox-static_*.deb pkg
mkdir -p rootfs/bin rootfs/tmp rootfs/etc
cp pkg/bin/busybox rootfs/bin/busybox
for applet in sh ls cat echo sleep httpd wget id; do ln -s busybox "rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/:/bin/sh' > rootfs/etc/passwd
tar -C rootfs -cf /out/rootfs.tar .
