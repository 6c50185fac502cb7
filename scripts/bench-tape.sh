#!/usr/bin/env bash
# Write throughput of the virtual tape library against plain GNU tar on the same chunk
# files: `tar -b 512 -cf FILE` versus `tar --format=posix -cf - | tape-library store` into a
# VTL cartridge (through the plugin's C ABI, release build). Medians of 3 warm runs.
# Then the time to read one point back from a tape holding 1 point and one holding 10
# (co-located), which must not grow with the set: the reader spaces over files (MTFSF).
#
#   scripts/bench-tape.sh [CHUNKS] [WORKDIR]      default 64 chunks of 4 MiB in /tmp
set -euo pipefail
cd "$(dirname "$0")/.."
chunks=${1:-64}
work=${2:-/tmp/dpm-bench-tape}
rm -rf "$work" && mkdir -p "$work/src/dpm/rp/chunks"
swift build -c release --product TapeLibrary >/dev/null
plugin=$PWD/.build/release/libTapeLibrary.so
cc -O2 -I Sources/PluginAPI/C/include Tests/TapeLibraryTests/Fixtures/tape_host.c -o "$work/tape_host" -ldl
for i in $(seq 1 "$chunks"); do head -c 4194304 /dev/urandom > "$work/src/dpm/rp/chunks/$(printf '%064x' "$i").zst"; done
echo '{}' > "$work/src/dpm/rp/manifest.json"
bytes=$(du -sb "$work/src" | cut -f1)
cat "$work"/src/dpm/rp/chunks/* > /dev/null   # warm the page cache

now() { date +%s.%N; }
median() { sort -n | sed -n 2p; }
tar_times=(); vtl_times=()
for run in 1 2 3; do
  start=$(now); tar -b 512 -cf "$work/plain.tar" -C "$work/src" dpm; sync -f "$work/plain.tar"; end=$(now)
  tar_times+=("$(echo "$end - $start" | bc)")
  rm -rf "$work/state$run" "$work/vtl$run"
  "$work/tape_host" "$plugin" "$work/state$run" 5 command library.add \
    "{\"name\":\"b\",\"dir\":\"$work/vtl$run\",\"slots\":1,\"capacity\":\"8G\"}" >/dev/null
  "$work/tape_host" "$plugin" "$work/state$run" 5 command vtl.insert '{"barcode":"B00001L8","slot":1}' >/dev/null
  start=$(now)
  tar --format=posix -cf - -C "$work/src" dpm | "$work/tape_host" "$plugin" "$work/state$run" 5 store \
    '{"name":"bench","datasource":"d","rp":"rp","time":"2026-01-01T00:00:00Z","retention_days":7}' >/dev/null 2>&1
  sync -f "$work/vtl$run/cartridges/B00001L8.data"; end=$(now)
  vtl_times+=("$(echo "$end - $start" | bc)")
  rm -f "$work/plain.tar"; rm -rf "$work/vtl$run"
done
t=$(printf '%s\n' "${tar_times[@]}" | median); v=$(printf '%s\n' "${vtl_times[@]}" | median)
mb=$(echo "$bytes / 1048576" | bc)
printf 'data: %s MiB in %s chunk files\n' "$mb" "$chunks"
printf 'tar -b 512 -cf FILE:                          %6.3f s  %7.1f MiB/s\n' "$t" "$(echo "$mb / $t" | bc -l)"
printf 'tar --format=posix -cf - | VTL store (ABI):   %6.3f s  %7.1f MiB/s  (%.2fx tar)\n' "$v" "$(echo "$mb / $v" | bc -l)" "$(echo "$t / $v" | bc -l)"

# Restore one point from a set of 1 and of 10 (32 MiB points).
point() {  # point N: a pax stream of 8 chunks of 4 MiB
  rm -rf "$work/p" && mkdir -p "$work/p/dpm/p$1/chunks"
  for i in $(seq 1 8); do head -c 4194304 /dev/urandom > "$work/p/dpm/p$1/chunks/$(printf '%064x' "$i").zst"; done
  tar --format=posix -cf "$work/p$1.pax" -C "$work/p" dpm
}
for set in 1 10; do
  rm -rf "$work/rs" "$work/rv"
  "$work/tape_host" "$plugin" "$work/rs" 5 command library.add "{\"name\":\"r\",\"dir\":\"$work/rv\",\"slots\":1,\"capacity\":\"8G\"}" >/dev/null
  "$work/tape_host" "$plugin" "$work/rs" 5 command vtl.insert '{"barcode":"R00001L8","slot":1}' >/dev/null
  for n in $(seq 1 "$set"); do
    point "$n"
    "$work/tape_host" "$plugin" "$work/rs" 5 store "{\"name\":\"p$n\",\"datasource\":\"d\",\"rp\":\"p$n\",\"time\":\"2026-01-01T00:00:00Z\",\"retention_days\":3650,\"colocate\":true,\"pool\":\"b\"}" < "$work/p$n.pax" >/dev/null 2>&1
  done
  target=$(( (set + 1) / 2 ))
  cat "$work/rv/cartridges/R00001L8.data" > /dev/null
  times=()
  for run in 1 2 3; do
    start=$(now); "$work/tape_host" "$plugin" "$work/rs" 5 read "p$target" | cmp - "$work/p$target.pax"; end=$(now)
    times+=("$(echo "$end - $start" | bc)")
  done
  printf 'restore one 32 MiB point from a tape of %2d points:  %6.3f s\n' "$set" "$(printf '%s\n' "${times[@]}" | median)"
done
rm -rf "$work"
