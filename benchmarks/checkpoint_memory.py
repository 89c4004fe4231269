"""Activation checkpointing of ResNet-1001: memory, time overhead, and exactness.

    python benchmarks/checkpoint_memory.py                          # ResNet-1001, CPU, ~5 min
    python benchmarks/checkpoint_memory.py --measure-at 128 --measure-modes segment:8
    python benchmarks/checkpoint_memory.py --device cuda --batches 32,128 --time-batch 128

1. **Memory.** Peak memory of one SGD step (forward, backward, step; momentum buffers
   already allocated) per checkpoint mode, at two batch sizes. Everything the step
   allocates except the weight gradients scales with the batch, so the two points give
   a per-image slope (the activation memory per image) and a constant (the weight
   gradients); the peak at ``--target-batch`` (the paper's 128) is extrapolated from
   them, and ``--measure-at`` measures it directly for the modes that fit. CPU: tensor
   storages tracked by a TorchDispatchMode (idresnet.perf.memory); CUDA:
   ``torch.cuda.max_memory_allocated``.
2. **Time.** Steps per second of each mode against the plain run at ``--time-batch``,
   interleaved repeats, medians; the overhead is ``plain speed / mode speed - 1``.
3. **Exactness.** From the same initial weights and batches, a few SGD steps with and
   without checkpointing: the losses, weights and BatchNorm buffers must be equal
   (``torch.equal``; on CUDA within 1e-3, cuDNN being not bitwise reproducible) and
   every ``num_batches_tracked`` must equal the number of steps.

Writes a Markdown report to stdout and ``--markdown``, a JSON report to ``--json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import idresnet
from idresnet.networks.checkpointing import canonical_mode
from idresnet.perf.measure import hardware_info, resolve_device
from idresnet.perf.memory import step_memory

MiB = 2**20


def make_batch(batch, classes=10, size=32, seed=0, device="cpu", channels_last=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=g)
    y = torch.randint(0, classes, (batch,), generator=g)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(device).contiguous(memory_format=fmt), y.to(device)


def build(name, mode, device, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return idresnet.create_model(name).set_checkpointing(mode).to(device, memory_format=fmt)


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def step_fn(model, opt, x, y):
    def step(mark=lambda name: None):
        loss = F.cross_entropy(model(x), y)
        mark("forward")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def memory_at(name, mode, batch, device, channels_last):
    model = build(name, mode, device, channels_last)
    opt = sgd(model)
    x, y = make_batch(batch, device=device, channels_last=channels_last)
    step = step_fn(model, opt, x, y)
    step()  # momentum buffers exist before the measured step
    r = step_memory(step, device)
    del model, opt
    return r


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_modes(name, modes, batch, device, channels_last, repeats, steps):
    runs = {}
    for mode in modes:
        model = build(name, mode, device, channels_last)
        opt = sgd(model)
        x, y = make_batch(batch, device=device, channels_last=channels_last)
        runs[mode] = step_fn(model, opt, x, y)
        runs[mode]()  # warm-up
    times = {m: [] for m in modes}
    for rep in range(repeats):
        order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
        for mode in order:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                runs[mode]()
            sync(device)
            times[mode].append((time.perf_counter() - t0) / steps)
    return times


def _max_diff(xs, ys) -> float:
    return max((float((a.double() - b.double()).abs().max()) for a, b in zip(xs, ys) if a.numel()), default=0.0)


def exactness(name, mode, device, batch, steps, channels_last):
    """Plain and checkpointed runs from the same weights on the same batches. On the CPU
    everything must be bit-identical; on CUDA (cuDNN's reductions are not bitwise
    reproducible, even between two plain runs) the differences must be tiny, and
    ``num_batches_tracked`` must still equal ``steps`` exactly."""
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
    plain = build(name, "none", device, channels_last)
    ckpt = copy.deepcopy(plain).set_checkpointing(mode)
    curves = []
    for model in (plain, ckpt):
        opt = sgd(model)
        losses = []
        for i in range(steps):
            x, y = make_batch(batch, seed=100 + i, device=device, channels_last=channels_last)
            torch.manual_seed(i)
            losses.append(step_fn(model, opt, x, y)().item())
        curves.append(losses)
    bns = [m for m in ckpt.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    float_buffers = lambda m: [b for b in m.buffers() if b.is_floating_point()]  # noqa: E731
    out = {
        "mode": mode,
        "batch": batch,
        "steps": steps,
        "device": device.type,
        "losses_plain": curves[0],
        "losses_checkpointed": curves[1],
        "losses_equal": curves[0] == curves[1],
        "weights_equal": all(torch.equal(a, b) for a, b in zip(plain.parameters(), ckpt.parameters())),
        "bn_buffers_equal": all(torch.equal(a, b) for a, b in zip(plain.buffers(), ckpt.buffers())),
        "max_loss_diff": max(abs(a - b) for a, b in zip(*curves)),
        "max_weight_diff": _max_diff(list(plain.parameters()), list(ckpt.parameters())),
        "max_bn_buffer_diff": _max_diff(float_buffers(plain), float_buffers(ckpt)),
        "num_batches_tracked": sorted({int(m.num_batches_tracked) for m in bns}),
    }
    counted_once = out["num_batches_tracked"] == [steps]
    if device.type == "cuda":
        out["ok"] = counted_once and out["max_loss_diff"] < 1e-3 and out["max_bn_buffer_diff"] < 1e-3
    else:
        out["ok"] = counted_once and out["losses_equal"] and out["weights_equal"] and out["bn_buffers_equal"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="preact_resnet1001")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--modes", default="none,unit,segment:4,segment:8,segment:16")
    ap.add_argument("--batches", default="2,8", help="two batch sizes for the memory fit")
    ap.add_argument("--target-batch", type=int, default=128)
    ap.add_argument("--measure-at", type=int, help="also measure the peak directly at this batch")
    ap.add_argument("--measure-modes", default="segment:8", help="modes to measure at --measure-at")
    ap.add_argument("--time-batch", type=int, default=16)
    ap.add_argument("--time-modes", default="none,unit,segment:8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--exact-mode", default="segment:8")
    ap.add_argument("--exact-batch", type=int, default=4)
    ap.add_argument("--exact-steps", type=int, default=3)
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: memory,time,exact")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = [canonical_mode(m) for m in args.modes.split(",")]
    b1, b2 = (int(b) for b in args.batches.split(","))
    skip = set(filter(None, args.skip.split(",")))
    cl = args.channels_last
    report = {
        "model": args.model,
        "hardware": hardware_info(device),
        "channels_last": cl,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "memory": [],
        "direct": [],
        "time": {},
        "exactness": None,
    }
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    if "memory" not in skip:
        for mode in modes:
            r1 = memory_at(args.model, mode, b1, device, cl)
            r2 = memory_at(args.model, mode, b2, device, cl)
            slope = (r2["peak_bytes"] - r1["peak_bytes"]) / (b2 - b1)
            const = r1["peak_bytes"] - slope * b1
            fwd_slope = (r2["after_forward_bytes"] - r1["after_forward_bytes"]) / (b2 - b1)
            row = {
                "mode": mode,
                f"peak_b{b1}": r1["peak_bytes"],
                f"peak_b{b2}": r2["peak_bytes"],
                "peak_per_image": slope,
                "kept_after_forward_per_image": fwd_slope,
                "constant": const,
                "target_batch": args.target_batch,
                "peak_at_target": const + slope * args.target_batch,
                "method": r1["method"],
            }
            report["memory"].append(row)
            log(
                f"memory {mode}: {slope / MiB:.2f} MiB/image, peak at {args.target_batch}: "
                f"{row['peak_at_target'] / 2**30:.2f} GiB"
            )
        base = report["memory"][0]
        for row in report["memory"]:
            row["ratio_per_image"] = row["peak_per_image"] / base["peak_per_image"]
            row["ratio_at_target"] = row["peak_at_target"] / base["peak_at_target"]
        if args.measure_at:
            for mode in (canonical_mode(m) for m in args.measure_modes.split(",")):
                t0 = time.perf_counter()
                r = memory_at(args.model, mode, args.measure_at, device, cl)
                fit = next((m for m in report["memory"] if m["mode"] == mode), None)
                predicted = fit["constant"] + fit["peak_per_image"] * args.measure_at if fit else None
                report["direct"].append(
                    {
                        "mode": mode,
                        "batch": args.measure_at,
                        "peak": r["peak_bytes"],
                        "predicted": predicted,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                log(f"direct {mode} at {args.measure_at}: {r['peak_bytes'] / 2**30:.2f} GiB")

    if "time" not in skip:
        tmodes = [canonical_mode(m) for m in args.time_modes.split(",")]
        times = time_modes(args.model, tmodes, args.time_batch, device, cl, args.repeats, args.steps)
        base = statistics.median(times[tmodes[0]])
        report["time"] = {
            "batch": args.time_batch,
            "repeats": args.repeats,
            "rows": [
                {"mode": m, "step_s": statistics.median(t), "all": t, "overhead": statistics.median(t) / base - 1.0}
                for m, t in times.items()
            ],
        }
        for r in report["time"]["rows"]:
            log(f"time {r['mode']}: {r['step_s']:.2f} s/step ({100 * r['overhead']:+.0f}%)")

    if "exact" not in skip:
        report["exactness"] = exactness(
            args.model, canonical_mode(args.exact_mode), device, args.exact_batch, args.exact_steps, cl
        )
        log(f"exactness: {report['exactness']}")

    text = markdown(report, b1, b2)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    if args.markdown:
        Path(args.markdown).write_text(text)
    ex = report["exactness"]
    return 0 if ex is None or ex["ok"] else 1


def markdown(report, b1, b2) -> str:
    hw = report["hardware"]
    out = [
        f"Model `{report['model']}`, {hw['name']}, torch {hw['torch']}, "
        f"{'channels_last' if report['channels_last'] else 'NCHW'} fp32, date {report['date']}.",
        "",
    ]
    if report["memory"]:
        t = report["memory"][0]["target_batch"]
        out += [
            f"Peak memory of one SGD step, fitted from batches {b1} and {b2} ({report['memory'][0]['method']}):",
            "",
            f"| checkpoint | peak MiB/image | kept after forward MiB/image | x plain | "
            f"constant MiB | peak at batch {t} GiB | x plain at {t} |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["memory"]:
            out.append(
                f"| {r['mode']} | {r['peak_per_image'] / MiB:.1f} | {r['kept_after_forward_per_image'] / MiB:.1f} "
                f"| {r['ratio_per_image']:.3f} | {r['constant'] / MiB:.0f} | {r['peak_at_target'] / 2**30:.2f} "
                f"| {r['ratio_at_target']:.3f} |"
            )
    for d in report["direct"]:
        pred = f" (fit predicted {d['predicted'] / MiB:,.0f} MiB)" if d.get("predicted") else ""
        out += ["", f"Measured directly at batch {d['batch']}, {d['mode']}: peak {d['peak'] / MiB:,.0f} MiB{pred}."]
    if report["time"]:
        tm = report["time"]
        out += [
            "",
            f"Time per step at batch {tm['batch']} (median of {tm['repeats']} interleaved repeats):",
            "",
            "| checkpoint | ms/step | overhead |",
            "|---|---|---|",
        ]
        for r in tm["rows"]:
            out.append(f"| {r['mode']} | {1000 * r['step_s']:,.1f} | {100 * r['overhead']:+.0f}% |")
    ex = report["exactness"]
    if ex:
        out += [
            "",
            f"Exactness, {ex['mode']} vs plain, {ex['steps']} SGD steps at batch {ex['batch']} "
            f"({ex['device']}): losses equal {ex['losses_equal']}, weights equal {ex['weights_equal']}, "
            f"BN buffers equal {ex['bn_buffers_equal']} (max differences: loss {ex['max_loss_diff']:.2e}, "
            f"weights {ex['max_weight_diff']:.2e}, BN buffers {ex['max_bn_buffer_diff']:.2e}), "
            f"num_batches_tracked {ex['num_batches_tracked']}; "
            f"losses {', '.join(f'{v:.6f}' for v in ex['losses_checkpointed'])}: "
            f"**{'pass' if ex['ok'] else 'FAIL'}**.",
        ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
