"""Shared helpers of the PyTorch peer benchmarks: a request loop over stdin/stdout, timing."""
import json
import sys
import time

import torch


def time_median(fn, iters, warmup=0):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def serve(threads, handlers):
    """Answers one JSON request per stdin line ({"run": name, ...args}) with one JSON line on stdout."""
    torch.set_num_threads(threads)
    for line in sys.stdin:
        req = json.loads(line)
        name = req.pop("run")
        out = handlers[name](**req)
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": threads, **out}), flush=True)
