"""Training: the paper's recipe, resumable, on one process or many (torchrun).

    from idresnet.training import TrainConfig, train, load_config, RunResult
    result = train(TrainConfig(model="preact_resnet110", dataset="cifar10", budget=0.1))

See docs/training.md.
"""

from idresnet.training.config import TrainConfig, load_config
from idresnet.training.engine import train
from idresnet.training.metrics import RunResult

__all__ = ["RunResult", "TrainConfig", "load_config", "train"]
