"""Measure training-step throughput per memory format (and precision) on this machine.

    python -m idresnet.training.speed --model preact_resnet20 --batch-size 128

The settings are interleaved (A B A B ...) and each is reported by its median over
``--repeats`` rounds, so a machine shared with other work biases none of them. This is
how the CPU default of ``channels_last`` (runtime.CPU_CHANNELS_LAST) was chosen; see
docs/training.md for the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from idresnet.training.runtime import autocast


def step_rate(model, optimizer, x, y, steps: int, amp_dtype) -> float:
    """Images per second of ``steps`` SGD steps (after one untimed step)."""
    for i in range(steps + 1):
        if i == 1:
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with autocast(x.device, amp_dtype):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * x.shape[0] / (time.perf_counter() - start)


def measure(model_name: str, batch_size: int, steps: int, repeats: int, device: str,
            amps=(None,), threads: int | None = None, **model_kwargs) -> dict:
    """``{(channels_last, amp): [img/s per round]}``."""
    import idresnet

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    base = idresnet.create_model(model_name, **model_kwargs).to(dev)
    x = torch.randn(batch_size, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch_size,), device=dev)
    setups = {}
    for cl in (False, True):
        for amp in amps:
            fmt = torch.channels_last if cl else torch.contiguous_format
            m = idresnet.create_model(model_name, **model_kwargs).to(dev, memory_format=fmt)
            m.load_state_dict(base.state_dict())
            opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
            setups[(cl, amp)] = (m, opt, x.contiguous(memory_format=fmt))
    rates = {k: [] for k in setups}
    for _ in range(repeats):
        for key, (m, opt, xs) in setups.items():
            rates[key].append(step_rate(m, opt, xs, y, steps, key[1]))
    return rates


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="preact_resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    amps = (None, torch.bfloat16) if args.device.startswith("cuda") else (None,)
    rates = measure(args.model, args.batch_size, args.steps, args.repeats, args.device, amps, args.threads)
    print(f"{args.model}, batch {args.batch_size}, {args.device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; img/s median over {args.repeats} interleaved rounds (min-max):")
    for (cl, amp), r in rates.items():
        name = ("channels_last" if cl else "NCHW") + (" bf16" if amp else " fp32")
        print(f"  {name:20s} {statistics.median(r):8.0f}   ({min(r):.0f}-{max(r):.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
