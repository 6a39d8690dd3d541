#!/usr/bin/env python3
"""Python peer for `cargo bench --bench arena` (docs/BENCHMARKS.md).

The arena's bootstrap Elo as FastChat's `elo_analysis.py` computes it with pandas: online Elo
(K=4, scale 400, base 10, initial 1000; ties and both-bad half a win) over the battles in a
DataFrame, repeated over resamples of the battles with replacement (`DataFrame.sample(frac=1,
replace=True)`), then each model's median and 2.5 / 97.5 % quantiles. Reads the battles the
benchmark wrote (CSV: model_a, model_b, winner), prints one JSON line: the seconds the bootstrap
took (reading excluded), this process's peak RSS in MB, and each model's median rating.

Install: `pip install numpy pandas` into a virtual environment and pass its python to the
benchmark with `--python`.
"""

import argparse
import json
import math
import resource
import time

import numpy as np
import pandas as pd

SCORE_A = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


def online_elo(battles, k=4.0, scale=400.0, base=10.0, initial=1000.0):
    rating = {}
    for model_a, model_b, winner in battles[["model_a", "model_b", "winner"]].itertuples(index=False):
        ra = rating.setdefault(model_a, initial)
        rb = rating.setdefault(model_b, initial)
        ea = 1.0 / (1.0 + base ** ((rb - ra) / scale))
        eb = 1.0 / (1.0 + base ** ((ra - rb) / scale))
        sa = SCORE_A[winner]
        rating[model_a] = ra + k * (sa - ea)
        rating[model_b] = rb + k * (1.0 - sa - eb)
    return rating


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--battles", required=True)
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    battles = pd.read_csv(a.battles)
    np.random.seed(a.seed)
    started = time.perf_counter()
    rows = [online_elo(battles.sample(frac=1.0, replace=True)) for _ in range(a.rounds)]
    table = pd.DataFrame(rows)
    summary = table.quantile([0.025, 0.5, 0.975])
    seconds = time.perf_counter() - started
    print(json.dumps({
        "pandas": pd.__version__,
        "seconds": seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "median": {m: float(summary.loc[0.5, m]) for m in summary.columns if not math.isnan(summary.loc[0.5, m])},
    }))


if __name__ == "__main__":
    main()
