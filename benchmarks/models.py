"""The benchmark networks in deltanet, their PyTorch twins (same weights) and training steps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deltanet import zoo
from deltanet.layers import Conv2D, MaxPool2D, ReLU, Sequential
from deltanet.ops.losses import softmax_cross_entropy
from deltanet.optim import SGD


def build(name: str, rng: int = 0) -> tuple[Sequential, tuple[int, ...]]:
    """A deltanet network and its per-sample input shape."""
    if name == "lenet5":
        return zoo.lenet5((1, 28, 28), 10, rng=rng), (1, 28, 28)
    if name == "vgg_block":
        return Sequential(Conv2D(64, 64, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2)), (64, 32, 32)
    if name == "cnn1d":
        return zoo.cnn1d((1, 40), 10, rng=rng), (1, 40)
    if name == "cnn3d":
        return zoo.cnn3d((1, 16, 16, 16), 10, rng=rng), (1, 16, 16, 16)
    if name == "mlp":
        return zoo.mlp((784,), 10, hidden=(256,), activation="relu", rng=rng), (784,)
    raise ValueError(f"benchmarks: unknown network {name!r}.")


def to_torch(model: Sequential, torch):
    """The same network in ``torch.nn`` with the same weights (state names match 1:1)."""
    nn = torch.nn
    mods = []
    for layer in model:
        kind = type(layer).__name__
        if kind in ("Conv1D", "Conv2D", "Conv3D"):
            nd = layer.spatial_dims
            conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[nd - 1]
            mods.append(
                conv(
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size,
                    layer.stride,
                    layer.padding,
                    layer.dilation,
                    layer.groups,
                )
            )
        elif kind.startswith("MaxPool"):
            pool = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[layer.spatial_dims - 1]
            mods.append(pool(layer.kernel_size, layer.stride, layer.padding))
        elif kind == "ReLU":
            mods.append(nn.ReLU())
        elif kind == "Flatten":
            mods.append(nn.Flatten())
        elif kind == "Dense":
            mods.append(nn.Linear(layer.in_features, layer.out_features))
        else:
            raise ValueError(f"benchmarks: no PyTorch twin for {kind}.")
    net = nn.Sequential(*mods)
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    return net


def data(shape: tuple[int, ...], batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *shape)).astype(np.float32)
    return x, rng.integers(0, 10, batch)


def deltanet_train(model: Sequential, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    """One SGD-momentum step on softmax cross-entropy (no δ for the input data, as PyTorch)."""
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step() -> float:
        opt.zero_grad()
        loss, dlogits = softmax_cross_entropy(model(x), y)
        model.backward(dlogits, input_grad=False)
        opt.step()
        return loss

    return step


def torch_train(net, x: np.ndarray, y: np.ndarray, torch) -> Callable[[], float]:
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    net.train()

    def step() -> float:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def deltanet_infer(model: Sequential, x: np.ndarray) -> Callable[[], np.ndarray]:
    model.eval()
    return lambda: model(x)


def torch_infer(net, x: np.ndarray, torch) -> Callable[[], object]:
    net.eval()
    tx = torch.from_numpy(x)

    def step():
        with torch.inference_mode():
            return net(tx)

    return step


def deltanet_fwd_bwd(model: Sequential, x: np.ndarray, dy: np.ndarray) -> Callable[[], object]:
    """Forward and backward of a block inside a network: δ for the input and the weights."""
    model.train()

    def step():
        model.zero_grad()
        model(x)
        return model.backward(dy)

    return step


def torch_fwd_bwd(net, x: np.ndarray, dy: np.ndarray, torch) -> Callable[[], object]:
    tx = torch.from_numpy(x).requires_grad_(True)
    tdy = torch.from_numpy(dy)

    def step():
        net.zero_grad()
        tx.grad = None
        net(tx).backward(tdy)
        return tx.grad

    return step
