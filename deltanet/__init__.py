"""deltanet: deep learning on NumPy with every backward pass derived by hand."""

from deltanet import init, ops
from deltanet.gradcheck import GradcheckReport, gradcheck, numerical_gradient
from deltanet.layers import *  # noqa: F403 - the layers are the public API
from deltanet.layers import __all__ as _layer_names
from deltanet.layers.config import layer_from_dict, layer_to_dict
from deltanet.ops import losses

__version__ = "0.1.0"

__all__ = [
    *_layer_names,
    "GradcheckReport",
    "gradcheck",
    "init",
    "layer_from_dict",
    "layer_to_dict",
    "losses",
    "numerical_gradient",
    "ops",
]
