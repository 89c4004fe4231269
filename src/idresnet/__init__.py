"""idresnet: identity-mapping residual networks (He, Zhang, Ren, Sun, ECCV 2016)."""

__version__ = "0.1.0"

from idresnet.networks.registry import create_model, list_models, model_info  # noqa: E402

__all__ = ["create_model", "list_models", "model_info", "__version__"]
