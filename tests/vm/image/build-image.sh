#!/bin/bash
# Build the nfskit test VM image into $OUT: base.img (raw ext4 root), vmlinuz, initrd.img, manifest.
# Called by tests/vm/image.py, which decides when a rebuild is needed (this file, packages.txt,
# files/, the salt wheels and the mirror are the cache key) and moves $OUT into the cache when done.
#
# Environment: OUT (empty staging dir), MIRROR, SUITE, WHEELS (dir of salt wheels built on the host:
# host and guest are both Debian 12 / CPython 3.11, and some deps need gcc), SALT_VERSION,
# DEB_CACHE (debootstrap --cache-dir, so a rebuild does not download the .debs again).
# Needs root (debootstrap, chroot, mkfs.ext4 -d).
set -euo pipefail
: "${OUT:?}" "${MIRROR:?}" "${SUITE:?}" "${WHEELS:?}" "${SALT_VERSION:?}" "${DEB_CACHE:?}"
HERE=$(dirname "$(readlink -f "$0")")
ROOT=$OUT/rootfs
START=$SECONDS
step() { echo "[vm-image +$((SECONDS - START))s] $*"; }

unmount_all() {
  for m in dev/pts dev proc sys; do
    if mountpoint -q "$ROOT/$m" 2>/dev/null; then umount -l "$ROOT/$m"; fi
  done
}
trap unmount_all EXIT
mount_api() {
  mount -t proc proc "$ROOT/proc"
  mount --bind /dev "$ROOT/dev"
}

PKGS=$(grep -v -e '^#' -e '^$' "$HERE/packages.txt" | paste -sd, -)
mkdir -p "$ROOT" "$DEB_CACHE"
step "debootstrap $SUITE from $MIRROR ($(echo "$PKGS" | tr , ' ' | wc -w) packages + minbase)"
# only the milestones on the console, the whole log in $OUT
debootstrap --variant=minbase --cache-dir="$DEB_CACHE" --include="$PKGS" "$SUITE" "$ROOT" "$MIRROR" 2>&1 \
  | tee "$OUT/debootstrap.log" \
  | grep --line-buffered -E '^(E:|W: Failure|I: (Retrieving (Release|Packages)|Resolving|Checking component|Installing core|Unpacking the base|Configuring the base|Base system))' \
  | while IFS= read -r line; do step "$line"; done \
  || { tail -n 25 "$OUT/debootstrap.log"; exit 1; }

mount_api
step "salt $SALT_VERSION into /opt/salt (offline, $(ls "$WHEELS" | wc -l) host-built wheels)"
chroot "$ROOT" python3 -m venv /opt/salt
mkdir -p "$ROOT/tmp/wheels"
cp "$WHEELS"/*.whl "$ROOT/tmp/wheels/"
# the host's pip settings (find-links, certificates) mean nothing inside the chroot
env -u PIP_FIND_LINKS -u PIP_CERT -u PIP_CONSTRAINT -u PIP_INDEX_URL -u REQUESTS_CA_BUNDLE \
  chroot "$ROOT" /opt/salt/bin/pip install -q --disable-pip-version-check --no-index \
  --find-links /tmp/wheels "salt==$SALT_VERSION"
rm -rf "$ROOT/tmp/wheels"
chroot "$ROOT" /opt/salt/bin/salt-call --version

step "configure: units, minion, boot-time trims"
cp -a "$HERE/files/." "$ROOT/"
echo nkvm > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost\n' > "$ROOT/etc/hosts"
echo "/dev/vda / ext4 defaults,noatime 0 1" > "$ROOT/etc/fstab"
: > "$ROOT/etc/resolv.conf"   # no DNS in the test network
chroot "$ROOT" passwd -d root >/dev/null   # console login for debugging a test VM
chroot "$ROOT" systemctl enable -q nkvm-net.service salt-minion.service
# nfsd runs only where a test asks for it (vmbed.Vm.start_nfsd): the client VM boots faster without it
chroot "$ROOT" systemctl disable -q nfs-server.service
for unit in e2scrub_reap.service e2scrub_all.timer fstrim.timer apt-daily.timer apt-daily-upgrade.timer \
            getty-static.service getty@tty1.service serial-getty@ttyS0.service nfs-blkmap.service \
            systemd-binfmt.service systemd-update-utmp.service networking.service; do
  chroot "$ROOT" systemctl mask -q "$unit" 2>/dev/null || true
done

KV=$(ls "$ROOT/lib/modules" | head -1)
step "kernel $KV: trim modules, small initrd"
for d in drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet drivers/infiniband sound \
         drivers/staging drivers/bluetooth net/wireless drivers/iio drivers/hid drivers/usb drivers/scsi \
         drivers/isdn drivers/input/touchscreen drivers/mtd drivers/md drivers/ata arch/x86/kvm; do
  rm -rf "$ROOT/lib/modules/$KV/kernel/$d"
done
chroot "$ROOT" depmod "$KV"
# MODULES=list: the initrd only needs an ext4 root on virtio (36 MB -> ~7 MB, seconds less per boot);
# virtio_net in the initrd too, or eth0 appears only after udev's coldplug (~30 s later under TCG)
echo "MODULES=list" > "$ROOT/etc/initramfs-tools/conf.d/nkvm.conf"
printf '%s\n' virtio_pci virtio_blk virtio_net ext4 > "$ROOT/etc/initramfs-tools/modules"
chroot "$ROOT" update-initramfs -u -k "$KV" >/dev/null 2>&1
cp "$ROOT/boot/vmlinuz-$KV" "$OUT/vmlinuz"
cp "$ROOT/boot/initrd.img-$KV" "$OUT/initrd.img"

{
  echo "kernel: $KV"
  echo "suite: $SUITE"
  echo "mirror: $MIRROR"
  echo "salt: $SALT_VERSION"
  echo "packages:"
  chroot "$ROOT" dpkg-query -W -f='  ${Package} ${Version}\n'
} > "$OUT/manifest.txt"

chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*
unmount_all   # mkfs.ext4 -d fails with "Permission denied" on a bind-mounted /proc or /dev

step "mkfs.ext4 -d ($(du -sh "$ROOT" | cut -f1) rootfs)"
mkfs.ext4 -q -F -L nkvm-root -d "$ROOT" "$OUT/base.img" 3G
rm -rf "$ROOT"
step "done: $(du -h --apparent-size "$OUT/base.img" | cut -f1) image, $(du -h "$OUT/base.img" | cut -f1) allocated"
