#!/usr/bin/env python3
"""dpm against restic, borg, qemu-img convert and a plain read, on the same disk image, in one run.

The image (default 4 GiB) is about 35% unallocated (holes), 30% random data and 35% real
binaries (slices of a tar of /usr/lib), in 1 MiB pieces. Measured, each the median of
--runs runs on a warm page cache, with peak RSS from /usr/bin/time:
  full backup, incremental after 1% of the 1 MiB blocks change, restore, store size.
dpm protects the image as a VM at rest (raw disk) through the HyperVHost plugin; restic 0.14
(repository v2, compression auto) and borg 1.2 (--chunker-params fixed,4194304, zstd level 1,
a fresh repository per measurement) back up the same file.

Usage: benchmarks/run.py [--size-gib 4] [--runs 3] [--work DIR] [--sparse-gib 64]
"""
import argparse, hashlib, json, os, random, shutil, statistics, subprocess, sys, tarfile, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DPM = os.path.join(ROOT, ".build", "release", "dpm")
MIB = 1 << 20


def durable(measure):
    """Runs a measurement, then `sync`: returns (seconds until the command returned, seconds
    until its writes were on disk, RSS, …). dpm syncs its own writes; restic and borg leave
    some in the page cache, so only the second figure compares like with like."""
    result = measure()
    start = time.monotonic()
    subprocess.run(["sync"], check=True)
    return (result[0], result[0] + time.monotonic() - start) + tuple(result[1:])


def run(argv, env=None, cwd=None, capture=True):
    """Runs a command under /usr/bin/time; returns (seconds, peak RSS in MiB, stdout)."""
    full_env = dict(os.environ, **(env or {}))
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, env=full_env, cwd=cwd,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          errors="replace")
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"benchmark: {' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    rss_kib = int(proc.stderr.strip().splitlines()[-1])
    return elapsed, rss_kib / 1024, proc.stdout


def du(path):
    """Bytes the files under `path` occupy on disk (holes not counted)."""
    return int(subprocess.check_output(["du", "-s", "--block-size=1", path]).split()[0])


def make_image(path, size_gib, seed=1):
    """Writes the mixed image: 35% holes, 30% random, 35% slices of a tar of /usr/lib."""
    tar_path = path + ".usrlib.tar"
    if not os.path.exists(tar_path):
        with tarfile.open(tar_path, "w") as tar:
            total = 0
            for directory, _, files in os.walk("/usr/lib"):
                for name in sorted(files):
                    full = os.path.join(directory, name)
                    if os.path.islink(full) or not os.path.isfile(full):
                        continue
                    try:
                        tar.add(full)
                        total += os.path.getsize(full)
                    except OSError:
                        pass
                if total > 1536 * MIB:
                    break
    rng = random.Random(seed)
    blocks = size_gib * 1024
    with open(tar_path, "rb") as tar, open(path, "wb") as out:
        tar_size = os.path.getsize(tar_path)
        out.truncate(blocks * MIB)
        for block in range(blocks):
            kind = rng.random()
            if kind < 0.35:
                continue
            out.seek(block * MIB)
            if kind < 0.65:
                out.write(rng.randbytes(MIB))
            else:
                tar.seek(rng.randrange(0, max(1, tar_size - MIB)) // 4096 * 4096)
                out.write(tar.read(MIB).ljust(MIB, b"\0"))
    return blocks


def change_blocks(path, blocks, fraction, seed):
    rng = random.Random(seed)
    with open(path, "r+b") as out:
        for block in rng.sample(range(blocks), max(1, int(blocks * fraction))):
            out.seek(block * MIB)
            out.write(rng.randbytes(MIB))


def warm(path):
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


class Tool:
    """One backup tool: fresh repository, full backup, incremental, restore."""

    def __init__(self, name, work):
        self.name, self.work = name, work

    def fresh(self):
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)


class DPMTool(Tool):
    def env(self):
        return {"DPM_HOME": self.work + "/data"}

    def fresh(self, image):
        super().fresh()
        run([DPM, "vm", "add", "bench", "--disk", image], env=self.env())

    def backup(self, mode):
        elapsed, rss, out = run([DPM, "backup", "bench", mode, "--json", "--ignore-scratch-space"], env=self.env())
        report = json.loads(out)
        self.last_report = report
        return elapsed, rss

    def restore(self, target):
        shutil.rmtree(target, ignore_errors=True)
        elapsed, rss, _ = run([DPM, "recover", "bench", "--raw", target], env=self.env())
        return elapsed, rss, os.path.join(target, "disk0.raw")

    def store_size(self):
        return du(self.work + "/data/store")


class ResticTool(Tool):
    def env(self):
        return {"RESTIC_PASSWORD": "benchmark", "RESTIC_REPOSITORY": self.work + "/repo", "RESTIC_CACHE_DIR": self.work + "/cache"}

    def fresh(self, image):
        super().fresh()
        self.image = image
        run(["restic", "init", "--repository-version", "2"], env=self.env())

    def backup(self, mode):
        elapsed, rss, _ = run(["restic", "backup", "--compression", "auto", self.image], env=self.env())
        return elapsed, rss

    def restore(self, target):
        shutil.rmtree(target, ignore_errors=True)
        elapsed, rss, _ = run(["restic", "restore", "latest", "--target", target], env=self.env())
        return elapsed, rss, target + self.image

    def store_size(self):
        return du(self.work + "/repo")


class BorgTool(Tool):
    def env(self):
        return {"BORG_REPO": self.work + "/repo", "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                "BORG_BASE_DIR": self.work + "/base"}

    def fresh(self, image):
        super().fresh()
        self.image = image
        self.archives = 0
        run(["borg", "init", "-e", "none"], env=self.env())

    def backup(self, mode):
        self.archives += 1
        elapsed, rss, _ = run(["borg", "create", "--chunker-params", "fixed,4194304", "-C", "zstd,1",
                               f"::a{self.archives}", self.image], env=self.env())
        return elapsed, rss

    def restore(self, target):
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        elapsed, rss, _ = run(["borg", "extract", f"::a{self.archives}"], env=self.env(), cwd=target)
        return elapsed, rss, target + self.image

    def store_size(self):
        return du(self.work + "/repo")


def median(values):
    return statistics.median(values)


def hash_compress_limit(image, nonzero_bytes):
    """The 2-core limit: time to SHA-256 and zstd-1 the allocated bytes, spread over two cores."""
    speed = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", str(4 * MIB), "-evp", "sha256"],
                           capture_output=True, text=True).stdout
    sha_rate = None
    for line in speed.splitlines():
        if line.lower().startswith("sha256"):
            sha_rate = float(line.split()[-1].rstrip("k")) * 1000
    sample = image + ".sample"
    with open(image, "rb") as src, open(sample, "wb") as dst:
        dst.write(src.read(256 * MIB))
    bench = subprocess.run(["zstd", "-b1", "-i3", sample], capture_output=True, text=True)
    os.unlink(sample)
    zstd_rate = None
    text = (bench.stdout + bench.stderr).split("\r")[-1]
    parts = text.split()
    for index, part in enumerate(parts):
        if part == "MB/s" and zstd_rate is None:
            zstd_rate = float(parts[index - 1]) * 1e6
    if not sha_rate or not zstd_rate:
        return None, sha_rate, zstd_rate
    return nonzero_bytes * (1 / sha_rate + 1 / zstd_rate) / 2, sha_rate, zstd_rate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "dpm-bench"))
    parser.add_argument("--sparse-gib", type=int, default=64)
    args = parser.parse_args()

    os.makedirs(args.work, exist_ok=True)
    image = os.path.join(args.work, "vm.raw")
    print(f"generating a {args.size_gib} GiB image in {image} …", file=sys.stderr)
    blocks = make_image(image, args.size_gib)
    allocated = du(image)
    warm(image)
    results = {}

    plain = [run(["cat", image], capture=False)[0] for _ in range(args.runs)]
    copies = []
    for _ in range(args.runs):
        target = os.path.join(args.work, "copy.raw")
        copies.append(run(["qemu-img", "convert", "-f", "raw", "-O", "raw", image, target])[0])
        os.unlink(target)
    results["plain read"] = {"full": median(plain)}
    results["qemu-img convert"] = {"full": median(copies)}

    tools = [DPMTool("dpm", args.work + "/dpm"), ResticTool("restic", args.work + "/restic"), BorgTool("borg", args.work + "/borg")]
    original_hash = sha256_file(image)
    for tool in tools:
        fulls, increments, restores, rss, verify = [], [], [], [], []
        fulls_returned, increments_returned, restores_returned = [], [], []
        for attempt in range(args.runs):
            # Each run starts from the pristine image and a fresh repository.
            subprocess.run(["cp", "--sparse=always", image, image + ".work"], check=True)
            work_image = image + ".work"
            warm(work_image)
            tool.fresh(work_image)
            subprocess.run(["sync"], check=True)
            returned, elapsed, peak = durable(lambda: tool.backup("--full"))
            fulls.append(elapsed); fulls_returned.append(returned); rss.append(peak)
            if isinstance(tool, DPMTool):
                verify.append(tool.last_report.get("verify_ms", 0) / 1000)
            size_full = tool.store_size()
            change_blocks(work_image, blocks, 0.01, seed=attempt + 7)
            changed_hash = sha256_file(work_image)
            warm(work_image)
            subprocess.run(["sync"], check=True)
            returned, elapsed, peak = durable(lambda: tool.backup("--incremental"))
            increments.append(elapsed); increments_returned.append(returned); rss.append(peak)
            size_both = tool.store_size()
            returned, elapsed, peak, restored = durable(lambda: tool.restore(os.path.join(args.work, "restore-" + tool.name)))
            restores.append(elapsed); restores_returned.append(returned); rss.append(peak)
            if sha256_file(restored) != changed_hash:
                sys.exit(f"{tool.name}: the restored image differs from the source")
            shutil.rmtree(os.path.join(args.work, "restore-" + tool.name), ignore_errors=True)
            os.unlink(work_image)
        results[tool.name] = {"full": median(fulls), "incremental": median(increments), "restore": median(restores),
                              "full_returned": median(fulls_returned), "incremental_returned": median(increments_returned),
                              "restore_returned": median(restores_returned),
                              "store_full": size_full, "store_both": size_both, "rss": max(rss)}
        if verify:
            results[tool.name]["verify"] = median(verify)
        print(f"{tool.name}: {results[tool.name]}", file=sys.stderr)

    limit, sha_rate, zstd_rate = hash_compress_limit(image, allocated)

    # dpm on a 64 GiB sparse image with a little data: memory must not grow with size.
    sparse = os.path.join(args.work, "sparse.raw")
    with open(sparse, "wb") as f:
        f.truncate(args.sparse_gib << 30)
        rng = random.Random(3)
        for block in range(0, args.sparse_gib * 1024, 997):
            f.seek(block * MIB)
            f.write(rng.randbytes(MIB))
    sparse_tool = DPMTool("dpm-sparse", args.work + "/dpm-sparse")
    sparse_tool.fresh(sparse)
    sparse_time, sparse_rss = sparse_tool.backup("--full")
    _, sparse_restore_rss, _ = sparse_tool.restore(os.path.join(args.work, "restore-sparse"))
    shutil.rmtree(os.path.join(args.work, "restore-sparse"), ignore_errors=True)
    os.unlink(sparse)

    d, r, b = results["dpm"], results["restic"], results["borg"]
    lines = [
        f"Image: {args.size_gib} GiB, {allocated / MIB:.0f} MiB allocated (35% holes, 30% random, 35% /usr/lib); "
        f"median of {args.runs} runs; {os.cpu_count()} cores.",
        "",
        "Times run until the data is on disk (the command, then `sync`); in brackets, until the command returned.",
        "",
        "| Tool | Full backup | Incremental (1% of blocks changed) | Restore | Store after both | Peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for name in ["dpm", "restic", "borg"]:
        x = results[name]
        lines.append(f"| {name} | {x['full']:.2f} s ({x['full_returned']:.2f}) | {x['incremental']:.2f} s ({x['incremental_returned']:.2f}) | "
                     f"{x['restore']:.2f} s ({x['restore_returned']:.2f}) | {x['store_both'] / MIB:.0f} MiB | {x['rss']:.0f} MiB |")
    lines += [
        f"| qemu-img convert | {results['qemu-img convert']['full']:.2f} s (copy) | | | | |",
        f"| plain read (cat) | {results['plain read']['full']:.2f} s | | | | |",
        "",
        "| Ratio | Value |",
        "|---|---|",
        f"| restic full ÷ dpm full | {r['full'] / d['full']:.2f}× |",
        f"| borg full ÷ dpm full | {b['full'] / d['full']:.2f}× |",
        f"| restic incremental ÷ dpm incremental | {r['incremental'] / d['incremental']:.2f}× |",
        f"| borg incremental ÷ dpm incremental | {b['incremental'] / d['incremental']:.2f}× |",
        f"| restic restore ÷ dpm restore | {r['restore'] / d['restore']:.2f}× |",
        f"| borg restore ÷ dpm restore | {b['restore'] / d['restore']:.2f}× |",
        f"| dpm store ÷ restic store | {d['store_both'] / r['store_both']:.2f} |",
        f"| dpm full ÷ qemu-img convert | {d['full'] / results['qemu-img convert']['full']:.2f}× |",
    ]
    if limit:
        lines.append(f"| dpm full ÷ 2-core hash+compress limit ({limit:.2f} s: SHA-256 {sha_rate / 1e9:.2f} GB/s, "
                     f"zstd-1 {zstd_rate / 1e9:.2f} GB/s per core; reading, writing, syncing and the initial replica's check from storage are extra) | "
                     f"{d['full'] / limit:.2f}× |")
    lines.append(f"| dpm on a {args.sparse_gib} GiB sparse image: backup {sparse_time:.2f} s, peak RSS backup / restore | "
                 f"{sparse_rss:.0f} / {sparse_restore_rss:.0f} MiB |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
