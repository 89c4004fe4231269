"""Networks of the paper: CIFAR (6n+2, 9n+2, 1-layer skip) and ImageNet (18-200)."""

from idresnet.networks.registry import MODELS, count_parameters, create_model, list_models, model_info
from idresnet.networks.resnet import ResNet, count_weight_layers, init_weights

__all__ = [
    "MODELS",
    "ResNet",
    "count_parameters",
    "count_weight_layers",
    "create_model",
    "init_weights",
    "list_models",
    "model_info",
]
