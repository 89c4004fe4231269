"""Weight files: their record, safetensors files, checkpoints, the run folder's file names.

Below the networks and the training engine (it needs only the base modules, torch and
safetensors), so that reading one weights file loads neither the engine nor the data
loaders. See docs/architecture.md.
"""

from idresnet.weights.checkpoint import load_checkpoint, load_latest, save_checkpoint
from idresnet.weights.record import WeightsRecord
from idresnet.weights.weightfile import find_weights, load_weights, mismatches, read_weights, save_weights

__all__ = [
    "WeightsRecord",
    "find_weights",
    "load_checkpoint",
    "load_latest",
    "load_weights",
    "mismatches",
    "read_weights",
    "save_checkpoint",
    "save_weights",
]
