#!/usr/bin/env python3
"""Ours vs torch, case by case, from the JSON files of one session:

    bench_meta_step       --benchmark_out=ours.json  --benchmark_out_format=json
    bench_torch_meta_step --benchmark_out=torch.json --benchmark_out_format=json
    python3 benchmarks/torch/compare.py ours.json torch.json

Cases are matched by name (`torch/` prefix and the min_time/iterations/repeats/real_time
suffixes dropped, so `thr:2/lenet/plain/train:100` meets `torch/thr:2/lenet/...`); the
time is the median over repetitions of the real time and, beside it, of the CPU time of
the benchmark thread (on a shared machine the real time of a single-threaded run also
counts the time other processes hold the core; at more than one thread the CPU time misses
the worker threads, so use the real time). peak_MB is each case's peak resident memory
above its start (benchmarks/bench_common.hpp), largest over repetitions.
"""
import json
import re
import statistics
import sys

SUFFIX = re.compile(r"/(min_time:[^/]*|iterations:\d+|repeats:\d+|real_time|manual_time|threads:\d+)")
UNIT = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load(path):
    with open(path) as f:
        data = json.load(f)
    samples, medians, peaks = {}, {}, {}
    for b in data["benchmarks"]:
        if b.get("error_occurred") or b.get("skipped") is True:
            continue
        name = SUFFIX.sub("", b.get("run_name", b["name"]))
        if name.startswith("torch/"):
            name = name[len("torch/"):]
        unit = UNIT[b.get("time_unit", "ns")]
        ms = (b["real_time"] * unit, b["cpu_time"] * unit)
        if "peak_MB" in b:
            peaks[name] = max(peaks.get(name, 0.0), float(b["peak_MB"]))
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = ms
        else:
            samples.setdefault(name, []).append(ms)
    times = dict(medians)
    for k, v in samples.items():
        times[k] = (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v))
    return times, peaks


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    (ours, ours_mb), (torch, torch_mb) = load(argv[1]), load(argv[2])
    common = [k for k in ours if k in torch]
    if not common:
        print("no common cases", file=sys.stderr)
        return 1
    width = max(len(k) for k in common)
    print(f"{'case':<{width}} {'ours ms':>10} {'torch ms':>10} {'ours/torch':>10} "
          f"{'ours MB':>8} {'torch MB':>8} {'MB ratio':>8}")
    for k in sorted(common):
        (o, _), (t, _) = ours[k], torch[k]
        om, tm = ours_mb.get(k, 0.0), torch_mb.get(k, 0.0)
        ratio = f"{om / tm:>8.2f}" if tm > 0 else f"{'-':>8}"
        print(f"{k:<{width}} {o:>10.3f} {t:>10.3f} {o / t:>10.2f} {om:>8.0f} {tm:>8.0f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
