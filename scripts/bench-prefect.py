#!/usr/bin/env python3
"""Prefect peer for `cargo bench --bench orchestration` (docs/BENCHMARKS.md).

The issue's anchor, run side by side: one Prefect 3.4 flow per referendum with six trivial tasks
in a row (dispatch -> scrape -> augment -> infer -> vote -> comment, each returning at once), N
referenda one after the other, against the temporary local Prefect server that an unconfigured
client starts itself (SQLite). Prints one JSON line: the per-referendum latencies' median and p90
in ms, and the peak RSS of this process plus every process it started (the server), in MB.

Install: `pip install "prefect==3.4.25" "fastapi==0.119.1"` into a virtual environment and pass
its python to the benchmark with `--python`. (The FastAPI pip picks otherwise, 0.165, refuses the
`min_items` argument Prefect 3.4's server still passes.)
"""

import argparse
import json
import os
import statistics
import time


def descendants(pid):
    """Process ids started (directly or not) by `pid`, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # The command name is in parentheses and may hold spaces: split after it.
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def peak_rss_mb(pid):
    """VmHWM of `pid` in MB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def percentile(sorted_values, p):
    i = round((len(sorted_values) - 1) * p)
    return sorted_values[min(i, len(sorted_values) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--referenda", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=3, help="flow runs before timing (server start)")
    a = ap.parse_args()

    from prefect import flow, task
    import prefect

    @task
    def stage(name, referendum):
        return referendum

    @flow
    def referendum_flow(referendum):
        for name in ("dispatch", "scrape", "augment", "infer", "vote", "comment"):
            referendum = stage(name, referendum)
        return referendum

    for i in range(a.warmup):
        referendum_flow(-1 - i)
    latencies = []
    for i in range(a.referenda):
        t = time.perf_counter()
        referendum_flow(i)
        latencies.append((time.perf_counter() - t) * 1000.0)
    latencies.sort()
    me = os.getpid()
    rss = peak_rss_mb(me) + sum(peak_rss_mb(p) for p in descendants(me))
    print(
        json.dumps(
            {
                "prefect": prefect.__version__,
                "referenda": a.referenda,
                "median_ms": statistics.median(latencies),
                "p90_ms": percentile(latencies, 0.9),
                "rss_mb": rss,
                "processes": 1 + len(descendants(me)),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
