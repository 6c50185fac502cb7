#!/usr/bin/env python3
"""dpm's long-term tiers against their peers, on the same data, in one run.

Tape (virtual tape library, release build):
  - `dpm tape copy` of a point against `tar -b 512 -cf` of the same chunk files (the store's
    chunk blobs), both until the data is on disk (sync);
  - recovering one point from a tape holding 1 point and from one holding 10 (co-located):
    the second must not grow with the set, because the reader spaces over other files.
Online (a real SeaweedFS on loopback, started here):
  - dpm's full and incremental (1% of the 1 MiB blocks changed) uploads against restic's S3
    backend: bytes sent (dpm's counters; restic's `data_added`) and time;
  - restoring the latest point from the bucket against `restic restore`;
  - the upload rate of dpm's full sync against `aws s3 cp` of the image (single client).
Medians of --runs runs; the image is benchmarks/run.py's mixed image (holes, random, binaries).

Usage: benchmarks/tiers.py [--size-gib 1] [--runs 3] [--work DIR]
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import DPM, MIB, change_blocks, du, make_image, run, warm  # noqa: E402

PASS = "benchmark passphrase"


def dpm(data, *args, env=None, parse=True):
    argv = [DPM, *args, "--data-dir", data] + (["--json"] if parse else [])
    elapsed, rss, out = run(argv, env=dict({"DPM_PASSPHRASE_FILE": os.environ["BENCH_PASS"]}, **(env or {})))
    return elapsed, (json.loads(out) if parse and out.strip() else out)


def timed_sync(func):
    start = time.monotonic()
    result = func()
    subprocess.run(["sync"], check=True)
    return time.monotonic() - start, result


def free_ports(count):
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def seaweed(work):
    """Starts `weed mini` on free ports; returns (process, endpoint, access key, secret)."""
    ports = free_ports(12)
    os.makedirs(work + "/weed", exist_ok=True)
    key, secret = "bench", "bench-secret-key"
    with open(work + "/s3.json", "w") as f:
        json.dump({"identities": [{"name": "admin", "credentials": [{"accessKey": key, "secretKey": secret}],
                                   "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}, f)
    args = ["weed", "mini", f"-dir={work}/weed", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={ports[0]}",
            f"-master.port={ports[2]}", f"-master.port.grpc={ports[3]}", f"-volume.port={ports[4]}", f"-volume.port.grpc={ports[5]}",
            f"-filer.port={ports[6]}", f"-filer.port.grpc={ports[7]}", f"-s3.port.grpc={ports[8]}", f"-admin.port={ports[9]}",
            f"-admin.port.grpc={ports[10]}", f"-s3.config={work}/s3.json", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-admin.ui=false", "-webdav=false", "-s3.autoCreateBucket=false"]
    process = subprocess.Popen(args, stdout=open(work + "/weed.log", "w"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports[0]}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_EC2_METADATA_DISABLED="true")
    for _ in range(200):
        if subprocess.run(["aws", "--endpoint-url", endpoint, "--region", "us-east-1", "s3api", "create-bucket", "--bucket", "probe"],
                          env=env, capture_output=True).returncode == 0:
            return process, endpoint, key, secret, env
        time.sleep(0.1)
    sys.exit("benchmark: SeaweedFS did not start")


def tape(args, work, image):
    rows = {"copy": [], "tar": [], "one": [], "ten": []}
    for round_ in range(args.runs):
        base = f"{work}/tape{round_}"
        data = base + "/data"
        os.makedirs(base)
        dpm(data, "vm", "add", "vm", "--disk", image, parse=False)
        dpm(data, "tape", "library", "add", "vtl", "--kind", "vtl", "--dir", base + "/vtl", "--slots", "12", "--capacity", "64G", parse=False)
        dpm(data, "config", "set", "tape-library.wait_seconds", "5", parse=False)
        for slot in range(1, 4):
            dpm(data, "tape", "insert", f"A0000{slot}L8", "--slot", str(slot), parse=False)
        dpm(data, "group", "create", "g", "--members", "vm", "--tape", "on", "--tape-retention", "1y", "--colocate", "on", parse=False)
        dpm(data, "backup", "vm", parse=False)
        warm(image)
        elapsed, report = timed_sync(lambda: dpm(data, "tape", "copy", "vm")[1])
        rows["copy"].append((elapsed, report["archive_bytes"]))
        chunks = data + "/store/chunks"
        subprocess.run(["cat"] + [os.path.join(d, f) for d, _, fs in os.walk(chunks) for f in fs], stdout=subprocess.DEVNULL)
        elapsed, _ = timed_sync(lambda: subprocess.run(["tar", "-b", "512", "-cf", base + "/plain.tar", "-C", data + "/store", "chunks"], check=True))
        rows["tar"].append((elapsed, os.path.getsize(base + "/plain.tar")))
        os.unlink(base + "/plain.tar")
        copies = [report["copy"]["name"]]
        first_rp = report["copy"]["rp_id"]
        elapsed, _ = timed_sync(lambda: dpm(data, "recover", "vm", "--rp", first_rp, "--from", "tape", "--copy-disks", base + "/one"))
        rows["one"].append(elapsed)
        blocks = os.path.getsize(image) // MIB
        for point in range(9):
            change_blocks(image, blocks, 0.01, seed=100 + point)
            dpm(data, "backup", "vm", parse=False)
            copies.append(dpm(data, "tape", "copy", "vm")[1]["copy"]["name"])
        dpm(data, "gc", "--grace", "0", parse=False)  # staged chunks of the first recovery go
        middle = copies[6]
        elapsed, _ = timed_sync(lambda: dpm(data, "recover", "vm", "--rp", middle, "--from", "tape", "--copy-disks", base + "/ten"))
        rows["ten"].append(elapsed)
        shutil.rmtree(base)
        make_image(image, args.size_gib)
    copy = statistics.median(b / t for t, b in rows["copy"]) / MIB
    plain = statistics.median(b / t for t, b in rows["tar"]) / MIB
    one, ten = statistics.median(rows["one"]), statistics.median(rows["ten"])
    print(f"| dpm tape copy (read from the store, checked, zstd, pax, VTL, sync) | {copy:.0f} MB/s |")
    print(f"| tar -b 512 -cf of the store's chunk files, then sync | {plain:.0f} MB/s |")
    print(f"| dpm tape copy ÷ tar throughput | {copy / plain:.2f}× |")
    print(f"| recover one point from a tape of 1 point / of 10 points (stage + --copy-disks) | {one:.2f} s / {ten:.2f} s ({ten / one:.2f}×) |")


def online(args, work, image):
    process, endpoint, key, secret, env = seaweed(work)
    try:
        with open(work + "/secret", "w") as f:
            f.write(secret)
        rows = {k: [] for k in ["dpm_full", "dpm_incr", "dpm_restore", "restic_full", "restic_incr", "restic_restore", "aws"]}
        blocks = os.path.getsize(image) // MIB
        for round_ in range(args.runs):
            base = f"{work}/online{round_}"
            data = base + "/data"
            os.makedirs(base)
            bucket, restic_bucket = f"dpm{round_}", f"restic{round_}"
            dpm(data, "vm", "add", "vm", "--disk", image, parse=False)
            dpm(data, "online", "setup", "--endpoint", endpoint, "--bucket", bucket, "--access-key", key, "--secret-key-file", work + "/secret",
                "--create-bucket", parse=False)
            dpm(data, "backup", "vm", parse=False)
            warm(image)
            elapsed, report = dpm(data, "online", "sync", "vm")
            rows["dpm_full"].append((elapsed, report["upload"]["bytes_sent"]))
            renv = dict(env, RESTIC_PASSWORD="benchmark", RESTIC_REPOSITORY=f"s3:{endpoint}/{restic_bucket}", RESTIC_CACHE_DIR=base + "/rcache")
            subprocess.run(["restic", "init", "--repository-version", "2"], env=renv, check=True, capture_output=True)
            def restic_backup():
                start = time.monotonic()
                out = subprocess.run(["restic", "backup", "--json", "--compression", "auto", image], env=renv, check=True,
                                     capture_output=True, text=True).stdout
                summary = [json.loads(line) for line in out.splitlines() if '"summary"' in line][-1]
                return time.monotonic() - start, summary["data_added"]
            rows["restic_full"].append(restic_backup())
            change_blocks(image, blocks, 0.01, seed=7 + round_)
            dpm(data, "backup", "vm", parse=False)
            elapsed, report = dpm(data, "online", "sync", "vm")
            rows["dpm_incr"].append((elapsed, report["upload"]["bytes_sent"]))
            rows["restic_incr"].append(restic_backup())
            elapsed, _ = timed_sync(lambda: dpm(data, "recover", "vm", "--rp", "latest", "--from", "online", "--copy-disks", base + "/r"))
            rows["dpm_restore"].append(elapsed)
            elapsed, _ = timed_sync(lambda: subprocess.run(["restic", "restore", "latest", "--target", base + "/rr"], env=renv, check=True,
                                                           capture_output=True))
            rows["restic_restore"].append(elapsed)
            start = time.monotonic()
            subprocess.run(["aws", "--endpoint-url", endpoint, "--region", "us-east-1", "s3", "cp", image, f"s3://{bucket}/aws-copy"],
                           env=env, check=True, capture_output=True)
            rows["aws"].append((time.monotonic() - start, os.path.getsize(image) - 0))
            shutil.rmtree(base)
            make_image(image, args.size_gib)
        med = lambda key, i: statistics.median(r[i] for r in rows[key])
        print(f"| online full upload: dpm / restic (s3 backend) | {med('dpm_full', 0):.2f} s, {med('dpm_full', 1) / MIB:.0f} MiB sent "
              f"/ {med('restic_full', 0):.2f} s, {med('restic_full', 1) / MIB:.0f} MiB added |")
        print(f"| online incremental (1% of blocks changed): dpm / restic | {med('dpm_incr', 0):.2f} s, {med('dpm_incr', 1) / MIB:.1f} MiB sent "
              f"/ {med('restic_incr', 0):.2f} s, {med('restic_incr', 1) / MIB:.1f} MiB added |")
        print(f"| restore latest from the bucket: dpm / restic | {statistics.median(rows['dpm_restore']):.2f} s / "
              f"{statistics.median(rows['restic_restore']):.2f} s |")
        dpm_rate = statistics.median(b / t for t, b in rows["dpm_full"]) / MIB
        aws_rate = statistics.median(b / t for t, b in rows["aws"]) / MIB
        print(f"| upload rate: dpm full sync / aws s3 cp of the image | {dpm_rate:.0f} / {aws_rate:.0f} MB/s ({dpm_rate / aws_rate:.2f}×) |")
    finally:
        process.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work")
    parser.add_argument("--only", choices=["tape", "online"])
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="dpm-bench-tiers-")
    os.makedirs(work, exist_ok=True)
    with open(work + "/pass", "w") as f:
        f.write(PASS)
    os.environ["BENCH_PASS"] = work + "/pass"
    image = work + "/image.raw"
    make_image(image, args.size_gib)
    print("| Measurement | Result |\n|---|---|")
    if args.only in (None, "tape"):
        tape(args, work, image)
    if args.only in (None, "online"):
        online(args, work, image)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
