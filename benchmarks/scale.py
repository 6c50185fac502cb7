#!/usr/bin/env python3
"""The scheduler and catalog at DPM's scale: 800 VMs of 100 GB in 20 groups with a 15-minute
sync, and a catalog of 800 × 448 recovery points and 10,000 jobs.

Measured (median of --runs, wall time of the whole dpm process):
  dpm schedule show --json   the day's plan of every group (target: < 1 s)
  dpm rp list VM --json      one VM's 448 recovery points (target: < 50 ms)
  dpm jobs list --json       the latest jobs (target: < 200 ms)

Usage: benchmarks/scale.py [--runs 5] [--work DIR]   (after `swift build -c release`)
"""
import argparse, json, os, shutil, sqlite3, statistics, subprocess, sys, tempfile, time, uuid
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DPM = os.path.join(ROOT, ".build", "release", "dpm")


def iso(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def timed(argv, env, runs):
    times = []
    for _ in range(runs):
        start = time.monotonic()
        out = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        times.append(time.monotonic() - start)
        if out.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed: {out.stderr}")
    return statistics.median(times), out.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "dpm-scale"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    data = os.path.join(args.work, "data")
    env = dict(os.environ, DPM_HOME=data)
    subprocess.run([DPM, "group", "list"], env=env, check=True, stdout=subprocess.DEVNULL)  # creates the catalog

    now = datetime.now(timezone.utc)
    db = sqlite3.connect(os.path.join(data, "catalog.sqlite"))
    vms = [f"vm-{n:03d}" for n in range(800)]
    db.executemany("INSERT INTO datasources(id, provider, name, kind, retention_days, created, host) VALUES(?,?,?,?,?,?,?)",
                   [(vm, "hyperv-host", vm, "vm", 14, iso(now), f"hv-{n % 16:02d}") for n, vm in enumerate(vms)])
    for g in range(20):
        members = vms[g * 40:(g + 1) * 40]
        policy = {
            "name": f"group-{g:02d}", "members": members, "colocate": False, "retention_days": 14, "sync_minutes": 15,
            "recovery_point_times": [480, 720, 1080], "express_full_times": [1200],
            "consistency_check": {"only_if_inconsistent": {}}, "replica_creation": {"now": {}},
            "online": False, "online_retention_days": 30, "online_time": 1260, "tape": False,
            "tape_retention": {"amount": 1, "unit": "years"}, "tape_frequency": "weekly", "tape_time": 1380,
            "compression": True, "encryption": False, "created": iso(now - timedelta(days=30)), "modified": iso(now - timedelta(days=30)),
        }
        db.execute("INSERT INTO groups(name, policy, created, modified) VALUES(?,?,?,?)",
                   (policy["name"], json.dumps(policy), policy["created"], policy["modified"]))
        db.executemany("INSERT INTO group_members(datasource_id, group_name) VALUES(?,?)", [(m, policy["name"]) for m in members])
    rows = []
    for vm in vms:
        for k in range(448):
            moment = now - timedelta(minutes=45 * k)
            rp = moment.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]
            rows.append((rp, vm, iso(moment), "incremental", "application", "at rest", 0, 100 << 30, 1 << 30, 1 << 28, 1 << 27,
                         5000, "token", "tracked", f"points/{vm}/{rp}.dpmidx", "ok", None))
    db.executemany("""INSERT INTO recovery_points(id, datasource_id, time, kind, consistency, reason, pause_ms, logical_bytes,
                      bytes_read, bytes_new, bytes_stored, duration_ms, token, change_source, index_path, status, damage)
                      VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""", rows)
    db.executemany("""INSERT INTO jobs(kind, datasource_id, state, created, started, finished, progress_done, progress_total, message,
                      schedule_key, slot, mode) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)""",
                   [("sync", vms[n % 800], "running" if n >= 9990 else "succeeded", iso(now), iso(now), None if n >= 9990 else iso(now),
                     n, 10000, "recovery point", f"sync:{vms[n % 800]}", iso(now), "sync") for n in range(10000)])
    db.commit()
    db.close()

    plan, out = timed([DPM, "schedule", "show", "--json"], env, args.runs)
    plan_info = json.loads(out)
    rp_list, out = timed([DPM, "rp", "list", "vm-417", "--json"], env, args.runs)
    assert len(json.loads(out)["recovery_points"]) == 448
    jobs_list, _ = timed([DPM, "jobs", "list", "--json"], env, args.runs)
    print(f"| Measurement (800 VMs, 20 groups, 15-minute sync; 358,400 recovery points; 10,000 jobs) | Median | Target |")
    print(f"|---|---|---|")
    print(f"| dpm schedule show (the day's plan: {plan_info['jobs']} jobs, computed in {plan_info['computed_ms']} ms) | {plan * 1000:.0f} ms | < 1 s |")
    print(f"| dpm rp list vm-417 --json (448 points) | {rp_list * 1000:.0f} ms | < 50 ms |")
    print(f"| dpm jobs list --json | {jobs_list * 1000:.0f} ms | < 200 ms |")


if __name__ == "__main__":
    main()
