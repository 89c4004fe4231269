"""idresnet: identity-mapping residual networks (He, Zhang, Ren, Sun, ECCV 2016)."""

from idresnet.factory import create_model
from idresnet.networks import list_models, model_info
from idresnet.version import __version__

__all__ = ["create_model", "list_models", "model_info", "__version__"]
