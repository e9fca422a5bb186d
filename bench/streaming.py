"""Benchmark preprocessing beyond memory: the partitioned streaming path against the in-memory chain.

Generates an ML-1M-format ratings.dat of about ``--events`` ratings (cached under ``--cache``),
then runs, each in its own subprocess so their memory is measured apart, the same chain twice:
ratings.dat -> ratings, sessions (one definition), cleansed, train/valid/test, item_index
Parquet tables. Once with ``streaming.preprocess_streaming`` and once in memory
(``parsing`` -> ``sessions`` -> ``cleansing`` -> ``splitting``), then checks the two wrote the same
rows in the same order. Peak memory is sampled from /proc every 20 ms, twice: ``peak_rss``
(VmHWM, the high-water mark of resident memory) also counts pages of memory-mapped files
(Polars maps the input and the partitions it reads), page cache the kernel can drop at any
time; ``peak_anon`` (RssAnon) is the process's own heap, the part that must fit in memory.

Usage: ``.venv/bin/python bench/streaming.py [--events 30000000] [--partition-events N]
[--threads N] [--skip-eager]``. Figures come last as ``key=value`` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from sbr_dagster.data import cleansing, parsing, sessions, splitting, streaming
from sbr_dagster.lake import files as lake
from sbr_dagster.testing import synthetic

# Shape of the generated data: ML-1M-like bursts, 20 sessions of ~8 ratings per user; about 152
# distinct ratings per user once repeated (user, movie) pairs are dropped.
SESSIONS_PER_USER, EVENTS_PER_SESSION, EVENTS_PER_USER, N_ITEMS = 20, 8, 152, 50_000
TABLES = ("sessions", "cleansed", "train", "valid", "test", "item_index")


def ratings_file(cache: Path, events: int, seed: int) -> Path:
    """A generated ratings.dat of about ``events`` lines, made once per size and seed."""
    n_users = max(1, round(events / EVENTS_PER_USER))
    directory = cache / f"users{n_users}_items{N_ITEMS}_seed{seed}"
    if not (directory / "ratings.dat").is_file():
        start = time.perf_counter()
        synthetic.write_ml1m_like(
            directory,
            n_users=n_users,
            n_items=N_ITEMS,
            seed=seed,
            sessions_per_user=SESSIONS_PER_USER,
            events_per_session=EVENTS_PER_SESSION,
        )
        seconds = time.perf_counter() - start
        print(f"generated {directory / 'ratings.dat'} in {seconds:.1f} s", file=sys.stderr, flush=True)
    return directory / "ratings.dat"


def run_streaming(ratings_dat: Path, out: Path, definition: str, partition_events: int) -> dict:
    summary = streaming.preprocess_streaming(
        ratings_dat, out, [definition], partition_events=partition_events
    )
    return {"partitions": summary["partitions"]}


def run_eager(ratings_dat: Path, out: Path, definition: str) -> dict:
    """The Dagster assets' chain, without Dagster: every table in memory, written with the lake's writer."""
    ratings, _ = parsing.drop_duplicate_ratings(parsing.read_ratings(ratings_dat))
    lake.write_parquet(ratings, out / "raw" / "ratings.parquet")
    cut = sessions.sessionize(ratings, sessions.parse_definition(definition))
    del ratings
    lake.write_parquet(cut, out / definition / "sessions.parquet")
    cleansed, _ = cleansing.cleanse(cut)
    del cut
    lake.write_parquet(cleansed, out / definition / "cleansed.parquet")
    split = splitting.split_by_days(cleansed)
    for name in TABLES[2:]:
        lake.write_parquet(getattr(split, name), out / definition / f"{name}.parquet")
    return {}


def _memory_mb(pid: int) -> dict[str, int]:
    """The process's high-water mark (VmHWM) and current heap (RssAnon), in MiB."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {key: int(fields[key].split()[0]) // 1024 for key in ("VmHWM", "RssAnon") if key in fields}


def measured(args: list[str], threads: int | None) -> dict:
    """Run this script as ``--child``; return its JSON answer with wall time and peak memory.

    Memory is sampled from /proc every 20 ms: ``ru_maxrss`` of a child would also count its
    parent's memory at fork time (Linux carries the high-water mark across exec).
    """
    env = dict(os.environ, **({"POLARS_MAX_THREADS": str(threads)} if threads else {}))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, env=env, text=True)
    peak = {"VmHWM": 0, "RssAnon": 0}
    while child.poll() is None:
        for key, value in _memory_mb(child.pid).items():
            peak[key] = max(peak[key], value)
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        sys.exit(f"child {args[:2]} failed with exit status {child.returncode}")
    return {
        **json.loads(child.stdout.read()),
        "s": seconds,
        "peak_rss_mb": peak["VmHWM"],
        "peak_anon_mb": peak["RssAnon"],
    }


def fingerprint(path: Path) -> tuple[int, int]:
    """Rows and an order-sensitive hash of every value, computed by streaming."""
    rows = pl.scan_parquet(path).with_row_index("_position").select(pl.struct(pl.all()).hash())
    answer = rows.select(pl.len(), pl.all().sum()).collect(engine="streaming")
    return answer.row(0)


def same_tables(first: Path, second: Path, definition: str) -> bool:
    paths = [Path("raw/ratings.parquet"), *(Path(definition) / f"{name}.parquet" for name in TABLES)]
    return all(fingerprint(first / path) == fingerprint(second / path) for path in paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--definition", default="gap_1h")
    parser.add_argument("--partition-events", type=int, default=streaming.DEFAULT_PARTITION_EVENTS)
    parser.add_argument("--threads", type=int, default=None, help="POLARS_MAX_THREADS for both runs")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/sbr_streaming_bench"))
    parser.add_argument("--skip-eager", action="store_true", help="only the streaming run")
    parser.add_argument("--child", choices=["generate", "streaming", "eager"], help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "generate":  # in a child, so this process stays small while the runs are measured
        print(json.dumps({"path": str(ratings_file(args.cache, args.events, args.seed))}))
        return
    if args.child == "streaming":
        print(json.dumps(run_streaming(args.input, args.out, args.definition, args.partition_events)))
        return
    if args.child == "eager":
        print(json.dumps(run_eager(args.input, args.out, args.definition)))
        return

    data = ["--events", str(args.events), "--seed", str(args.seed), "--cache", str(args.cache)]
    ratings_dat = Path(measured(["--child", "generate", *data], None)["path"])
    lakes = {kind: args.cache / f"lake_{kind}" for kind in ("streaming", "eager")}
    for root in lakes.values():
        shutil.rmtree(root, ignore_errors=True)
    common = ["--input", str(ratings_dat), "--definition", args.definition]
    runs = {"streaming": ["--out", str(lakes["streaming"]), "--partition-events", str(args.partition_events)]}
    if not args.skip_eager:
        runs["eager"] = ["--out", str(lakes["eager"])]
    results = {}
    for kind, extra in runs.items():
        results[kind] = measured(["--child", kind, *common, *extra], args.threads)
        print(f"{kind}:", results[kind], flush=True)

    n_events = (
        pl.scan_parquet(lakes["streaming"] / "raw" / "ratings.parquet").select(pl.len()).collect().item()
    )
    print(f"input={ratings_dat}")
    print(f"cpu_count={os.cpu_count()}")
    print(f"threads={args.threads or os.cpu_count()}")
    print(f"definition={args.definition}")
    print(f"events={n_events}")
    print(f"input_mb={ratings_dat.stat().st_size / 2**20:.0f}")
    print(f"partition_events={args.partition_events}")
    print(f"partitions={results['streaming']['partitions']}")
    for kind, result in results.items():
        print(f"{kind}_peak_rss_mb={result['peak_rss_mb']}")
        print(f"{kind}_peak_anon_mb={result['peak_anon_mb']}")
        print(f"{kind}_s={result['s']:.1f}")
    if "eager" in results:
        identical = same_tables(lakes["streaming"], lakes["eager"], args.definition)
        print(f"tables_identical={str(identical).lower()}")


if __name__ == "__main__":
    main()
