"""Shared helpers of the PyTorch peer benchmarks: a request loop over stdin/stdout, timing."""
import json
import resource
import sys
import time

import torch


def precision(bf16):
    """The peers' precision: torch.autocast('cpu', dtype=torch.bfloat16) around forward passes with --bf16 (what a
    PyTorch user writes for bf16 on a CPU), a no-op context otherwise."""
    return lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


class LayerNorm(torch.nn.LayerNorm):
    """nn.LayerNorm that takes bf16 activations under CPU autocast: PyTorch 1.13's CPU kernel rejects a bf16 input
    with float32 weights ("expected scalar type BFloat16 but found Float"); later versions normalise it in float32,
    as this does (and as reptok's F.layerNorm does)."""

    def forward(self, x):
        return super().forward(x.float() if x.dtype == torch.bfloat16 else x)


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
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": threads, "peak_rss_mb": peak_rss_mb,
                          **out}), flush=True)
