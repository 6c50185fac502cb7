#!/usr/bin/env python3
"""What the initial replica's check costs: full backups of the benchmark image (benchmarks/run.py's
mixed image: holes, random data, slices of /usr/lib) into a fresh store, by one or more dpm
binaries, runs interleaved so that the machine's noise falls on all of them alike.

Each figure is the median of --runs runs: the wall time of `dpm backup` plus the `sync` after it
(dpm makes its own writes durable; the sync is there so every tool pays for durability), the
process's user and system CPU time, and the check's own time (`verify_ms` of the report).

Usage: benchmarks/replica_check.py [--size-gib 4] [--runs 5] [--work DIR] DPM [DPM …]
  e.g. benchmarks/replica_check.py .build/release/dpm /tmp/dpm-base/.build/release/dpm
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import make_image, warm  # noqa: E402


def backup(dpm, image, home):
    """One full backup into a fresh store; returns (wall incl. sync, user, sys, report)."""
    shutil.rmtree(home, ignore_errors=True)
    env = dict(os.environ, DPM_HOME=home)
    subprocess.run([dpm, "vm", "add", "bench", "--disk", image], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["sync"], check=True)
    warm(image)
    start = time.monotonic()
    before = os.times()
    proc = subprocess.run([dpm, "backup", "bench", "--json", "--ignore-scratch-space"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    after = os.times()
    subprocess.run(["sync"], check=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{dpm} backup failed ({proc.returncode}): {proc.stderr}")
    return (wall, after.children_user - before.children_user, after.children_system - before.children_system,
            json.loads(proc.stdout))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "dpm-replica-check"))
    parser.add_argument("dpm", nargs="+")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    image = os.path.join(args.work, "vm.raw")
    if not os.path.exists(image):
        print(f"generating a {args.size_gib} GiB image in {image} …", file=sys.stderr)
        make_image(image, args.size_gib)
    results = {dpm: [] for dpm in args.dpm}
    for run in range(args.runs):
        for dpm in (args.dpm if run % 2 == 0 else reversed(args.dpm)):
            results[dpm].append(backup(dpm, image, os.path.join(args.work, "home")))
    shutil.rmtree(os.path.join(args.work, "home"), ignore_errors=True)
    for dpm, runs in results.items():
        report = runs[-1][3]
        check = report.get("verification") or {}
        median = lambda values: statistics.median(values)
        print(f"{dpm}\n  full backup + sync {median([r[0] for r in runs]):.2f} s "
              f"(runs: {', '.join(f'{r[0]:.2f}' for r in runs)}); user {median([r[1] for r in runs]):.2f} s, "
              f"sys {median([r[2] for r in runs]):.2f} s; check {median([r[3].get('verify_ms', 0) for r in runs]) / 1000:.2f} s\n"
              f"  {report['chunks_new']} new chunks, {report['recovery_point']['bytes_stored'] / 2**20:.0f} MiB stored; "
              f"{check.get('summary', 'verified: ' + str(report.get('verified')))}")


if __name__ == "__main__":
    main()
