#!/usr/bin/env bash
# dpm's main job on its embedded defaults (SQLite catalog, local chunk store):
# protect a real disk image, change it, protect it again, list the recovery points,
# recover them, check the recovered disks with qemu-img, and verify the store.
#
#   scripts/demo.sh            work in /tmp/dpm-demo (removed first)
#   DEMO_DIR=/somewhere scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --product dpm >/dev/null
swift build --product HyperVHost >/dev/null
dpm="$PWD/.build/debug/dpm"

demo="${DEMO_DIR:-/tmp/dpm-demo}"
rm -rf "$demo"
mkdir -p "$demo/vm" "$demo/tree/etc" "$demo/tree/docs"
export DPM_HOME="$demo/data"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Make a VM disk: an ext4 file system in a 1 GiB dynamic VHDX (qemu-img)"
cp /etc/os-release /etc/hostname "$demo/tree/etc/" 2>/dev/null || true
head -c 20000000 /dev/urandom > "$demo/tree/docs/random.bin"
cp -r /usr/share/common-licenses "$demo/tree/docs/" 2>/dev/null || true
if command -v mkfs.ext4 >/dev/null; then
  truncate -s 1G "$demo/fs.raw"
  mkfs.ext4 -q -F -d "$demo/tree" "$demo/fs.raw"
  qemu-img convert -f raw -O vhdx -o subformat=dynamic "$demo/fs.raw" "$demo/vm/web01.vhdx"
  rm "$demo/fs.raw"
else
  qemu-img create -q -f vhdx "$demo/vm/web01.vhdx" 1G
  qemu-io -f vhdx -c "write -P 0x5a 0 24M" "$demo/vm/web01.vhdx" >/dev/null
fi
qemu-img create -q -f vpc -o subformat=dynamic "$demo/vm/web01-data.vhd" 256M
qemu-io -f vpc -c "write -P 0x42 8M 16M" "$demo/vm/web01-data.vhd" >/dev/null
qemu-img info "$demo/vm/web01.vhdx" | head -3

step "Register the VM and list what dpm can protect"
"$dpm" vm add web01 --disk "$demo/vm/web01.vhdx" --disk "$demo/vm/web01-data.vhd"
"$dpm" datasources list

step "First backup: the initial replica, then checked: every chunk re-read from storage and re-hashed"
"$dpm" backup web01
cp "$demo/vm/web01.vhdx" "$demo/web01-at-first-backup.vhdx"

step "Change 4 MiB of the VM's disk, then back up again (only changed chunks are stored)"
qemu-io -f vhdx -c "write -P 0x77 300M 4M" "$demo/vm/web01.vhdx" >/dev/null
"$dpm" backup web01

step "Recovery points"
"$dpm" rp list web01
"$dpm" rp list web01 --calendar

step "Recover the latest point as a full copy of the VM, and check it against the live disks"
"$dpm" recover web01 --rp latest --alternate "$demo/recovered"
qemu-img check "$demo/recovered/web01/web01.vhdx"
qemu-img compare "$demo/recovered/web01/web01.vhdx" "$demo/vm/web01.vhdx"
qemu-img compare "$demo/recovered/web01/web01-data.vhd" "$demo/vm/web01-data.vhd"

step "Recover the first point's disks and check them against the disk as it was then"
first=$("$dpm" rp list web01 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["recovery_points"][0]["id"])')
"$dpm" recover web01 --rp "$first" --copy-disks "$demo/first"
qemu-img compare "$demo/first/web01.vhdx" "$demo/web01-at-first-backup.vhdx"

step "Verify every stored chunk"
"$dpm" verify

printf '\n\033[1mdpm main job: OK\033[0m (data directory %s)\n' "$DPM_HOME"
