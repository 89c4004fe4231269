"""A folder in huggingface_hub's layout: ``config.json``, ``model.safetensors``, ``README.md``.

What ``model.save_pretrained(DIR)`` and ``idresnet export --format hub`` write and
``idresnet.from_pretrained(DIR)`` reads; ``huggingface_hub.upload_folder`` publishes it as
it is. ``config.json`` names the network and every option it was built with (timm's keys:
``architecture``, ``num_classes``, ``num_features``, ``model_args``, ``pretrained_cfg``);
``model.safetensors`` holds the tensors with the weights' record as metadata (so it is
also a weights file of its own: ``idresnet eval --weights DIR/model.safetensors``);
``README.md`` is the model card, YAML front matter (``library_name``, ``tags``,
``datasets``, ``metrics``) and what is known of the weights, "unknown" where nothing says.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from idresnet.errors import UsageError
from idresnet.files import atomic_write_bytes, file_digest, new_folder
from idresnet.weights.record import MAX_CLASSES, WeightsRecord
from idresnet.weights.weightfile import HUB_WEIGHTS, load_weights, save_weights

CONFIG = "config.json"
WEIGHTS = HUB_WEIGHTS
CARD = "README.md"
FILES = (CONFIG, WEIGHTS, CARD)
NEEDED = (CONFIG, WEIGHTS)  # what loading needs; the card is for people
LIBRARY = "idresnet"
HF_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet-1k"}  # Hub dataset ids
UNKNOWN = "unknown"
LAYOUT = f"{CONFIG} (architecture, model_args, num_classes), {WEIGHTS} and {CARD}"


def write_folder(folder: str | Path, state: dict, config: dict, record: WeightsRecord, about: dict) -> Path:
    """Write the three files; a new folder appears whole (written beside it, then renamed),
    an existing one has each file replaced atomically. ``about``: the card's texts."""
    folder = Path(folder)
    with contextlib.nullcontext(folder) if folder.is_dir() else new_folder(folder) as target:
        save_weights(target / WEIGHTS, state, record)
        card = model_card(config, record, file_digest(target / WEIGHTS), about)
        atomic_write_bytes(target / CARD, card.encode())
        atomic_write_bytes(target / CONFIG, (json.dumps(config, indent=2) + "\n").encode())
    return folder


def read_folder(folder: str | Path) -> tuple[dict, dict, WeightsRecord]:
    """``(state_dict, config, record)`` of a hub folder; a missing file or a malformed
    ``config.json`` is a one-line UsageError naming the folder and what the layout needs."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "a file" if folder.exists() else "no such folder"
        raise UsageError(f"{folder}: {what}; a hub folder holds {LAYOUT}")
    missing = [name for name in NEEDED if not (folder / name).is_file()]
    if missing:
        raise UsageError(f"{folder} has no {' and no '.join(missing)}; a hub folder holds {LAYOUT}")
    config = _read_config(folder / CONFIG)
    state, meta = load_weights(folder / WEIGHTS)
    return state, config, WeightsRecord.read(meta, folder / WEIGHTS)


def _read_config(path: Path) -> dict:
    def bad(what: str) -> UsageError:
        return UsageError(f"{path}: {what}; a hub folder's {CONFIG} has architecture, model_args and num_classes")

    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"not JSON ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(config, dict):
        raise bad("not a JSON object")
    if not isinstance(config.get("architecture"), str):
        raise bad("no architecture (a network name)")
    args = config.get("model_args", {})
    if not (isinstance(args, dict) and all(isinstance(k, str) for k in args)):
        raise bad("model_args is not a mapping of model options")
    n = config.get("num_classes")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_CLASSES:
        raise bad(f"num_classes {str(n)[:20]!r} is not an integer in [0, {MAX_CLASSES}]")
    return config


def run_about(run_config: dict) -> dict:
    """The card's recipe, seeds and hardware from a run's ``config.yaml`` (parsed)."""
    info = run_config.get("run_info") or {}
    sched = info.get("schedule") or {}
    recipe = (
        f"SGD (momentum {run_config.get('momentum')}, weight decay {run_config.get('weight_decay')}"
        f"{', Nesterov' if run_config.get('nesterov') else ''}), batch {run_config.get('batch_size')}, "
        f"{sched.get('iterations', run_config.get('iterations'))} iterations, lr {sched.get('base_lr')} "
        f"x{run_config.get('lr_gamma')} at {sched.get('lr_milestones')}, warmup {sched.get('warmup_iters')} "
        f"iterations at {run_config.get('warmup_lr')}, budget {run_config.get('budget')} of the paper's schedule"
    )
    if info.get("amp") in ("bf16", "off"):  # the precision the weights were trained in
        recipe += ", bf16 autocast" if info["amp"] == "bf16" else ", float32"
    procs = info.get("world_size", 1)
    hardware = (
        f"{info.get('device_name', UNKNOWN)}, {procs} process{'es' if procs != 1 else ''}, "
        f"torch {info.get('torch_version', UNKNOWN)} (as the run's config.yaml records it)"
    )
    return {"recipe": recipe, "seeds": str(run_config.get("seed", UNKNOWN)), "hardware": hardware}


def model_card(config: dict, record: WeightsRecord, sha256: str, about: dict) -> str:
    """README.md: YAML front matter as the Hub's model cards, then what the weights are."""
    name = config["architecture"]
    dataset = HF_DATASETS.get(record.dataset or "")
    front = ["---", f"library_name: {LIBRARY}", "tags:", "- image-classification", "- resnet"]
    front += ["- pre-activation-resnet", f"- {LIBRARY}"]
    front += ["datasets:", f"- {dataset}"] if dataset else []
    front += ["metrics:", "- accuracy"] if record.test_error is not None else []
    front += ["---", ""]
    error = UNKNOWN
    if record.test_error is not None:
        at = f" at iteration {record.iteration}" if record.iteration is not None else ""
        error = f"{record.test_error:g}% (accuracy {100 - record.test_error:.2f}%){at}, on the data above"
    options = ", ".join(f"`{k}={v}`" for k, v in sorted(config.get("model_args", {}).items())) or "the defaults"
    data = record.dataset_description or record.dataset or UNKNOWN
    source = record.source or {}
    rows = [
        ("network", f"`{name}`: {about.get('network', UNKNOWN)}, {config['num_classes']} classes"),
        ("layout options", options),
        ("recipe", about.get("recipe", UNKNOWN)),
        ("data", data),
        ("final test error", error),
        ("seeds", about.get("seeds", UNKNOWN)),
        ("hardware", about.get("hardware", UNKNOWN)),
        ("weights", f"`{WEIGHTS}`, {record.dtype or 'float32'}, sha256 `{sha256}`"),
        ("exported from", about.get("exported_from") or record.exported_from or UNKNOWN),
        ("idresnet version", record.idresnet_version or UNKNOWN),
    ]
    if source:  # converted public weights
        converted = f"{source.get('file')} ({source.get('format')}, sha256 `{source.get('sha256')}`)"
        rows.append(("converted from", converted))
    if about.get("published"):
        rows.append(("published by idresnet", about["published"]))
    body = [
        f"# {name}",
        "",
        f'A network of He, Zhang, Ren and Sun, "Identity Mappings in Deep Residual Networks" (ECCV 2016), '
        f"in idresnet's layout: `idresnet.from_pretrained(FOLDER)` rebuilds it from {CONFIG} and loads {WEIGHTS}.",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows),
        "",
    ]
    return "\n".join(front + body)
