#!/usr/bin/env bash
# Builds the real Linux test guest of TESTING.md ("A real Linux guest") from Debian packages
# only: Debian's cloud kernel, qemu-guest-agent and busybox-static, in an initramfs.
#
#   scripts/build-test-guest.sh [DIR]      DIR defaults to $DPM_TEST_GUEST_DIR, else .build-guest/
#
# Output in DIR: vmlinuz, initrd.gz and manifest (the package versions and this script's hash).
# Idempotent: when the manifest names this very script and both files exist, it exits at once
# without asking apt anything. Needs apt-get (download only: nothing is installed), dpkg-deb,
# cpio and gzip. Prints DIR on success.
#
# The guest (its /init is written below) boots under `qemu-system-x86_64 -accel tcg` in a few
# seconds and expects, as Tests/Support/TestGuest.swift starts it:
#   - an ext4 disk as the first virtio-blk device (/dev/vda), mounted on /mnt;
#   - a virtio-serial port named org.qemu.guest_agent.0 (qemu-ga runs on it, state in /run);
#   - optionally a port named org.dpm.test.0: the test channel (see "Test channel" in /init);
#   - the console on ttyS0, where it prints "DPM-GUEST-READY KERNEL agent=… writer=… test-channel=…"
#     once qemu-ga runs (or "DPM-GUEST-FAILED WHAT" when a step failed).
# Kernel command line options (after the usual console=ttyS0 …):
#   dpm.writer=MS        append numbered records to /mnt/records every MS milliseconds, each
#                        followed by `sync` (record format in /init)
#   dpm.agent=off        do not start qemu-ga (its port stays closed)
#   dpm.agent-block=A,B  start qemu-ga with --block-rpcs=A,B (those commands disabled)
set -euo pipefail

repository="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-${DPM_TEST_GUEST_DIR:-$repository/.build-guest}}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stamp="script $(sha256sum "$0" | cut -d' ' -f1)"

if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.gz" ] && [ -f "$out/manifest" ] && grep -qxF "$stamp" "$out/manifest"; then
  echo "$out"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb cpio gzip ldd; do
  command -v "$tool" >/dev/null || { echo "build-test-guest.sh: $tool is missing; run scripts/setup.sh --tests" >&2; exit 1; }
done

work="$(mktemp -d "$out/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The kernel package the cloud metapackage currently points at (linux-image-6.1.0-NN-cloud-amd64).
kernel_package() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1; }
kernel="$(kernel_package)"
packages=("$kernel" qemu-guest-agent busybox-static)
# Stale package lists name a kernel the mirror no longer has: refresh them once and retry.
if [ -z "$kernel" ] || ! (cd "$work" && apt-get download -q "${packages[@]}" >/dev/null 2>"$work/apt.log"); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  kernel="$(kernel_package)"
  [ -n "$kernel" ] || { echo "build-test-guest.sh: apt-cache knows no linux-image-cloud-amd64; is the Debian main archive configured?" >&2; exit 1; }
  packages=("$kernel" qemu-guest-agent busybox-static)
  (cd "$work" && apt-get download -q "${packages[@]}" >/dev/null 2>"$work/apt.log") \
    || { echo "build-test-guest.sh: apt-get download ${packages[*]} failed:" >&2; cat "$work/apt.log" >&2; exit 1; }
fi

mkdir "$work/root"
manifest=()
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
  manifest+=("package $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)")
done
version="$(ls "$work/root/lib/modules")"
[ -f "$work/root/boot/vmlinuz-$version" ] || { echo "build-test-guest.sh: no kernel image in $kernel" >&2; exit 1; }

# The initramfs: busybox, qemu-ga and the libraries it links, seven virtio modules, /init.
tree="$work/initramfs"
mkdir -p "$tree"/{bin,sbin,usr/sbin,lib/modules,proc,sys,dev,run,mnt,tmp}
cp "$work/root/bin/busybox" "$tree/bin/busybox"
for applet in sh mount umount insmod sleep usleep dd sync cat echo printf ls mkdir stat kill grep sed head \
              tr wc test touch rm; do
  ln -s busybox "$tree/bin/$applet"
done
cp "$work/root/usr/sbin/qemu-ga" "$tree/usr/sbin/qemu-ga"
# qemu-ga's libraries as this Debian machine has them (qemu-system-x86 depends on the same ones).
if ldd "$work/root/usr/sbin/qemu-ga" | grep -q "not found"; then
  echo "build-test-guest.sh: qemu-ga needs libraries this machine lacks:" >&2
  ldd "$work/root/usr/sbin/qemu-ga" | grep "not found" >&2
  exit 1
fi
for library in $(ldd "$work/root/usr/sbin/qemu-ga" | awk '/=>/ { print $3; next } $1 ~ /^\// { print $1 }'); do
  mkdir -p "$tree$(dirname "$library")"
  cp -L "$library" "$tree$library"
done
# The order matters: each module needs the ones before it.
modules=(virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev virtio/virtio_pci_modern_dev virtio/virtio_pci
         block/virtio_blk char/virtio_console)
for module in "${modules[@]}"; do
  source="$work/root/lib/modules/$version/kernel/drivers/$module.ko"
  [ -f "$source" ] || { echo "build-test-guest.sh: $kernel lacks drivers/$module.ko" >&2; exit 1; }
  cp "$source" "$tree/lib/modules/"
done

cat > "$tree/init" <<'INIT'
#!/bin/sh
# The test guest's init (PID 1). It never exits: the test stops QEMU by its PID.
export PATH=/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
for module in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk virtio_console; do
  insmod /lib/modules/$module.ko || echo "DPM-GUEST-FAILED insmod $module"
done

# The device of the virtio-serial port named $1 (devices appear asynchronously after insmod).
port() {
  for entry in /sys/class/virtio-ports/*; do
    [ -f "$entry/name" ] && [ "$(cat "$entry/name")" = "$1" ] && echo "/dev/${entry##*/}" && return 0
  done
  return 1
}
waited=0
while [ ! -b /dev/vda ] || ! port org.qemu.guest_agent.0 >/dev/null; do
  usleep 20000
  waited=$((waited + 1))
  [ $waited -lt 1500 ] || { echo "DPM-GUEST-FAILED no /dev/vda or guest-agent port"; exec sleep 2147483647; }
done
mount -t ext4 /dev/vda /mnt || { echo "DPM-GUEST-FAILED mount /dev/vda"; exec sleep 2147483647; }
writer=""
agent=on
block=""
for option in $(cat /proc/cmdline); do
  case "$option" in
    dpm.writer=*) writer="${option#dpm.writer=}" ;;
    dpm.agent=off) agent=off ;;
    dpm.agent-block=*) block="--block-rpcs=${option#dpm.agent-block=}" ;;
  esac
done
if [ "$agent" = on ]; then
  qemu-ga -m virtio-serial -p "$(port org.qemu.guest_agent.0)" -d -t /run -f /run/qemu-ga.pid $block \
    || { echo "DPM-GUEST-FAILED qemu-ga"; exec sleep 2147483647; }
  while [ ! -s /run/qemu-ga.pid ]; do usleep 10000; done
fi

# The writer (dpm.writer=MS): appends records to /mnt/records and syncs after each. A record
# is written by one write(2) (printf, a builtin, flushes once), so a freeze never splits it. A record
# is RECORD_SIZE (1000) bytes: "R", the record number in 7 decimal digits, 991 copies of the
# number's last digit, "\n". 1000 does not divide the 4096-byte block, so records straddle
# blocks and a torn write shows as a record whose bytes do not match its number.
writer() {
  interval=$(($1 * 1000))
  for digit in 0 1 2 3 4 5 6 7 8 9; do
    eval "fill$digit=$(printf '%0991d' 0 | tr 0 $digit)"
  done
  number=0
  if [ -f /mnt/records ]; then number=$(($(stat -c %s /mnt/records) / 1000)); fi
  while :; do
    eval "body=\$fill$((number % 10))"
    printf 'R%07d%s\n' "$number" "$body" >> /mnt/records
    sync
    number=$((number + 1))
    [ "$interval" -gt 0 ] && usleep "$interval"
  done
}
[ -n "$writer" ] && { writer "$writer" & echo $! > /run/writer.pid; }

# Test channel (port org.dpm.test.0): one command per line, one reply line each.
#   records   -> the number of whole records in /mnt/records now
#   watch     -> starts sampling the freeze state every 10 ms; replies "watching"
#   report    -> stops sampling; replies "samples=N agent-frozen=A kernel-frozen=K both=B"
#   state     -> one sample now: "agent=frozen|thawed kernel=frozen|thawed|unknown"
# A sample reads two things that do not go through the guest agent's channel:
#   agent: qemu-ga's own frozen flag, the file /run/qga.state.isfrozen, which it creates
#          before it freezes and removes after it thaws (what guest-fsfreeze-status reports);
#   kernel: whether a write to /mnt is held by the kernel's freeze: a probe process
#          appends to /mnt/.freeze-probe; "frozen" when it is still running and blocked in
#          the superblock's write barrier (percpu_rwsem_wait in /proc/PID/wchan).
sample() {
  agent=thawed
  [ -e /run/qga.state.isfrozen ] && agent=frozen
  kernel=unknown
  if [ -n "$probe" ] && [ -d /proc/$probe ]; then
    case "$(cat /proc/$probe/wchan 2>/dev/null)" in
      percpu_rwsem_wait*|__percpu_down_read*|sb_start_write*|__sb_start_write*) kernel=frozen ;;
    esac
  else
    [ -n "$probe" ] && kernel=thawed
    # A new probe: a short write that only a frozen filesystem holds up.
    (echo probe >> /mnt/.freeze-probe) &
    probe=$!
  fi
  echo "agent=$agent kernel=$kernel"
}
channel=$(port org.dpm.test.0 || true)
if [ -n "$channel" ]; then
  (
    probe=""
    exec 3<>"$channel"
    # A read while the host end is not connected returns end of file at once: wait and retry.
    while :; do
    while read -r command <&3; do
      case "$command" in
        records) echo $(($(stat -c %s /mnt/records 2>/dev/null || echo 0) / 1000)) >&3 ;;
        state) probe=""; sample >/dev/null; usleep 200000; sample >&3 ;;
        watch)
          rm -f /run/samples
          ( probe=""; while [ ! -e /run/stop-watch ]; do sample >> /run/samples; usleep 10000; done; rm -f /run/stop-watch ) &
          echo watching >&3 ;;
        report)
          touch /run/stop-watch
          while [ -e /run/stop-watch ]; do usleep 10000; done
          echo "samples=$(wc -l < /run/samples) agent-frozen=$(grep -c 'agent=frozen' /run/samples)" \
               "kernel-frozen=$(grep -c 'kernel=frozen' /run/samples) both=$(grep -c 'agent=frozen kernel=frozen' /run/samples)" >&3 ;;
        *) echo "unknown command: $command" >&3 ;;
      esac
    done
    usleep 50000
    done
  ) &
fi
echo "DPM-GUEST-READY $(cat /proc/sys/kernel/osrelease) agent=$agent writer=${writer:-off} test-channel=${channel:-none}"
exec sleep 2147483647
INIT
chmod 755 "$tree/init"

(cd "$tree" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet | gzip -6 > "$work/initrd.gz")
cp "$work/root/boot/vmlinuz-$version" "$work/vmlinuz"
printf '%s\n' "kernel $version" "${manifest[@]}" "$stamp" > "$work/manifest"
mv -f "$work/vmlinuz" "$out/vmlinuz"
mv -f "$work/initrd.gz" "$out/initrd.gz"
mv -f "$work/manifest" "$out/manifest"
echo "$out"
