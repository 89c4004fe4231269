"""Networks of the paper: CIFAR (6n+2, 9n+2, 1-layer skip) and ImageNet (18-200).

The registry builds a network from a name and options (:func:`build_network` of a
:func:`resolve_model` spec); ``idresnet.create_model`` adds weights (:mod:`idresnet.factory`).
"""

from idresnet.networks.registry import (
    MODELS,
    ModelSpec,
    build_network,
    check_size,
    count_parameters,
    list_models,
    model_info,
    resolve_model,
)
from idresnet.networks.resnet import ResNet, count_weight_layers, init_weights

__all__ = [
    "MODELS",
    "ModelSpec",
    "ResNet",
    "build_network",
    "check_size",
    "count_parameters",
    "count_weight_layers",
    "init_weights",
    "list_models",
    "model_info",
    "resolve_model",
]
