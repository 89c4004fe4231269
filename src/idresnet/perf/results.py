"""Training-throughput benchmark, the reporting half: ratios, Markdown, JSON.

A report is the dict :func:`idresnet.perf.measure.run_bench` returns: hardware, settings,
the matrix-product rates, one row per (model, mode) and the profiles. Here every row
gets its ratios to the eager float32 NCHW baseline of the same model in the same run
(speed, speed per CPU-second, peak memory), and the report its one-line summaries, its
Markdown table and its files.
"""

from __future__ import annotations

import json

from idresnet.files import atomic_write_bytes
from idresnet.perf.profile import CATEGORIES, SPLIT


def add_ratios(rows: list[dict]) -> None:
    """Speed and memory of every mode relative to the baseline row of the same model."""
    base = next((r for r in rows if r["baseline"] and r.get("img_per_s")), None)
    for r in rows:
        if base is None or not r.get("img_per_s"):
            continue
        r["ratio"] = r["img_per_s"] / base["img_per_s"]
        if r.get("img_per_cpu_s") and base.get("img_per_cpu_s"):
            r["cpu_ratio"] = r["img_per_cpu_s"] / base["img_per_cpu_s"]
        if r.get("peak_bytes") and base.get("peak_bytes"):
            r["memory_ratio"] = r["peak_bytes"] / base["peak_bytes"]


def summary_line(r: dict) -> str:
    """One row as a log line: speed, ratio, fraction of the matmul rate, peak memory."""
    if r["status"] != "ok":
        return f"{r['model']} {r['mode']}: {r['status']} ({r.get('reason', '')})"
    text = f"{r['model']} {r['mode']}: {r['img_per_s']:.1f} img/s"
    if "ratio" in r:
        text += f" ({r['ratio']:.2f}x)"
    text += f", {r['matmul_fraction']:.2f} of matmul"
    if r.get("peak_bytes"):
        text += f", peak {r['peak_bytes'] / 2**20:.0f} MiB"
    return text


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def format_markdown(report: dict) -> str:
    """The report as Markdown: hardware, the results table, profiles (if any)."""
    hw = report["hardware"]
    lines = [
        f"Hardware: **{hw['name']}**; torch {hw['torch']}; device `{hw['device']}`"
        + (f"; CUDA {hw.get('cuda')}, cuDNN {hw.get('cudnn')}, driver {hw.get('driver')}" if hw.get("gpu") else "")
        + (
            f"; load average {hw['load_average']} at start, {hw.get('load_average_end')} at end"
            if hw.get("load_average") and hw["device"] == "cpu"
            else ""
        ),
        f"Date: {report['date']}. Command: `{report['command']}`",
        f"Matrix product {report['matmul']['n']}x{report['matmul']['n']} fp32: "
        f"{report['matmul']['fp32_flop_per_s'] / 1e9:.1f} GFLOP/s"
        + (
            f"; the same product through oneDNN: {report['matmul']['onednn_fp32_flop_per_s'] / 1e9:.1f} GFLOP/s"
            if report["matmul"].get("onednn_fp32_flop_per_s")
            else ""
        )
        + (
            f"; bf16: {report['matmul']['bf16_flop_per_s'] / 1e9:.1f} GFLOP/s"
            if report["matmul"].get("bf16_flop_per_s")
            else ""
        ),
        f"Settings: {report['settings']['steps']} steps x {report['settings']['repeats']} repeats "
        f"after {report['settings']['warmup']} warm-up step(s), {report['settings']['threads']} threads; "
        + (f"malloc: {report['settings']['malloc']}; " if report["settings"].get("malloc") else "")
        + f"{report['convention']}.",
        "",
    ]
    lines += _results_table(report)
    if report.get("profiles"):
        lines += _profile_table(report["profiles"])
    return "\n".join(lines) + "\n"


def _results_table(report: dict) -> list[str]:
    cpu = report["hardware"]["device"] == "cpu"
    onednn = bool(report["matmul"].get("onednn_fp32_flop_per_s"))
    head = (
        ["model", "batch", "mode", "img/s", "x baseline"]
        + (["img/CPU-s x base"] if cpu else [])
        + ["GFLOP/s", "of matmul"]
        + (["of oneDNN GEMM"] if onednn else [])
        + ["peak MiB", "mem x base", "warm-up s"]
        + (["page faults/step"] if cpu else [])
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["results"]:
        if r["status"] != "ok":
            cells = [r["model"], str(r["batch_size"]), r["mode"], f"{r['status']}: {r.get('reason', '')}"]
            cells += [""] * (len(head) - len(cells))
        else:
            cells = [
                r["model"],
                str(r["batch_size"]),
                r["mode"],
                _fmt(r.get("img_per_s"), ",.1f"),
                _fmt(r.get("ratio"), ".2f") + ("" if not r["baseline"] else " (base)"),
            ]
            if cpu:
                cells.append(_fmt(r.get("cpu_ratio"), ".2f"))
            cells += [_fmt(r["flop_per_s"] / 1e9, ",.1f"), _fmt(r.get("matmul_fraction"), ".2f")]
            if onednn:
                cells.append(_fmt(r.get("onednn_fraction"), ".2f"))
            cells += [
                _fmt(r["peak_bytes"] / 2**20 if r.get("peak_bytes") else None, ",.0f"),
                _fmt(r.get("memory_ratio"), ".2f"),
                _fmt(r.get("setup_s"), ".1f"),
            ]
            if cpu:
                cells.append(_fmt(r.get("page_faults_per_step"), ",.0f"))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _share_cell(p: dict, c: str) -> str:
    """``41% (13/28)``: the share of ``c``, and its forward / backward parts, where split."""
    cell = f"{100 * p['shares'][c]:.0f}%"
    phases = p.get("by_phase", {}).get(c)
    if c in SPLIT and phases and p.get("total_s"):
        fwd, bwd = (100 * phases[k] / p["total_s"] for k in ("forward", "backward"))
        cell += f" ({fwd:.0f}/{bwd:.0f})"
    return cell


def _profile_table(profiles: list[dict]) -> list[str]:
    cats = [c for c in CATEGORIES if c in profiles[0]["shares"]]
    lines = [
        "",
        "Time shares of one step by layer type (torch.profiler, operator self time; "
        "(a/b): forward / backward parts; conv GFLOP/s: 6 x that type's multiply-adds / its profiled time):",
        "",
        "| model | mode | " + " | ".join(cats) + " | conv3x3 GFLOP/s | conv1x1 GFLOP/s |",
        "|" + "---|" * (4 + len(cats)),
    ]
    for p in profiles:
        rates = p.get("gflop_per_s", {})
        lines.append(
            f"| {p['model']} | {p['mode']} | "
            + " | ".join(_share_cell(p, c) for c in cats)
            + f" | {_fmt(rates.get('conv3x3'), ',.0f')} | {_fmt(rates.get('conv1x1'), ',.0f')} |"
        )
    return lines


def write_outputs(report: dict, json_path=None, markdown_path=None) -> None:
    """The report as JSON and as Markdown, each written atomically where a path is given."""
    for path, text in (
        (json_path, lambda: json.dumps(report, indent=2, default=str)),
        (markdown_path, lambda: format_markdown(report)),
    ):
        if path:
            atomic_write_bytes(path, text().encode())
