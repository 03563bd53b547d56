"""Stateful layers: own their Parameters, keep the forward cache for the backward pass."""

from deltanet.layers.activations import (
    ELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from deltanet.layers.base import Layer, LayerList, Parameter
from deltanet.layers.containers import Add, Concat, Identity, Residual, Sequential
from deltanet.layers.conv import (
    Conv1D,
    Conv2D,
    Conv3D,
    ConvND,
    ConvTranspose1D,
    ConvTranspose2D,
    ConvTranspose3D,
    ConvTransposeND,
)
from deltanet.layers.dense import Dense
from deltanet.layers.dropout import Dropout
from deltanet.layers.norm import BatchNorm1D, BatchNorm2D, BatchNorm3D, BatchNormND
from deltanet.layers.pool import (
    AvgPool1D,
    AvgPool2D,
    AvgPool3D,
    AvgPoolND,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool1D,
    MaxPool2D,
    MaxPool3D,
    MaxPoolND,
)
from deltanet.layers.registry import layer_from_dict, layer_to_dict, register_layer
from deltanet.layers.reshape import Flatten, Reshape

__all__ = [
    "Layer", "Parameter", "LayerList", "register_layer",
    "Sequential", "Residual", "Add", "Concat", "Identity",
    "Conv1D", "Conv2D", "Conv3D", "ConvND",
    "ConvTranspose1D", "ConvTranspose2D", "ConvTranspose3D", "ConvTransposeND",
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "MaxPoolND",
    "AvgPool1D", "AvgPool2D", "AvgPool3D", "AvgPoolND", "GlobalAvgPool", "GlobalMaxPool",
    "Dense", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "Softplus", "Softmax", "LogSoftmax",
    "Dropout", "BatchNorm1D", "BatchNorm2D", "BatchNorm3D", "BatchNormND", "Flatten", "Reshape",
]  # fmt: skip
