"""CUDA-event timing shared by the PyTorch baselines (torch_sdpa.py, torch_softmax.py,
torch_qkv.py, torch_rope.py), the same scheme as the Rust benchmarks: untimed warm-up calls,
then each sample is the time between two CUDA events around `calls` calls, divided by `calls`.
The scripts import it from their own folder (xtask/baselines, or the bundle's baselines/)."""

import torch


def per_call_ms(fn, warmup, repeats, calls=1):
    """`repeats` samples of milliseconds per call of `fn`, after `warmup` untimed rounds."""
    for _ in range(warmup):
        for _ in range(calls):
            fn()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / calls)
    return samples
