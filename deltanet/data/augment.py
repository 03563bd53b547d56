"""Seeded, per-batch augmentation: random crop, horizontal flip, 1D shift, normalisation.

Each transform is a function of ``(x, rng) -> new x`` on a batch ``x (N, C, *spatial)``: it
never changes ``x`` and keeps its shape and dtype. The random ones draw every example's
choice at once from ``rng`` (one call per batch), so the same Generator state gives the same
batch. ``fit(..., augment=...)`` applies them to the training batches only.

Specs, comma-separated, applied in order (``parse_augment``):

- ``crop<P>``: ``RandomCrop(P)``, zero padding of ``P`` on every spatial side, then a random
  crop back to the size (images ``(C, H, W)`` and volumes ``(C, D, H, W)``);
- ``flip``: ``RandomFlip()``, a horizontal flip (the last axis) of half the images;
- ``shift<S>``: ``RandomShift(S)``, a circular shift of a 1D signal ``(C, L)`` by up to ``S``
  positions either way; ``shift<S>z``: the same with zeros shifted in (the 1D crop);
- ``norm<M>/<S>``: ``Normalize(M, S)``, ``(x - M) / S`` per channel; ``:`` separates channels
  (``norm0.49:0.48:0.45/0.25:0.24:0.26``);
- ``none``: no augmentation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deltanet.ops.window import pad as zero_pad

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


# --- the kernels ----------------------------------------------------------------------------


def _windows(
    x: np.ndarray, pad: int, offsets: np.ndarray, pad_mode: Literal["constant", "wrap"]
) -> np.ndarray:
    """``x (N, C, *spatial)`` padded by ``pad`` on every spatial side, and example n's window
    of the original size starting at ``offsets[:, n]`` (one row per spatial dim)."""
    spatial = x.shape[2:]
    pads = ((pad, pad),) * len(spatial)
    if pad_mode == "constant":
        padded = zero_pad(x, pads)  # the convolutions' padding: one filled array, one copy
    else:
        padded = np.pad(x, [(0, 0), (0, 0), *pads], mode=pad_mode)
    views = sliding_window_view(padded, spatial, axis=tuple(range(2, x.ndim)))
    # views: (N, C, *(2 pad + 1), *spatial); one window per example, gathered in one step.
    return views[(np.arange(len(x)), slice(None), *offsets)]


def random_crop(x: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero padding then a random crop back to the size: ``x (N, C, *spatial)`` -> same shape.

    Every example gets its own offset in ``[0, 2 padding]`` per spatial dim (drawn as one
    ``(len(spatial), N)`` array)."""
    offsets = rng.integers(0, 2 * padding + 1, size=(x.ndim - 2, len(x)))
    return _windows(x, padding, offsets, "constant")


def random_flip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """``x (N, C, ..., W)`` with the last axis reversed for each example with probability p."""
    flip = rng.random(len(x)) < p
    return np.where(flip.reshape(-1, *[1] * (x.ndim - 1)), x[..., ::-1], x)


def random_shift(
    x: np.ndarray, max_shift: int, rng: np.random.Generator, mode: str = "circular"
) -> np.ndarray:
    """``x (N, C, L)`` shifted along L by an integer in ``[-max_shift, max_shift]`` per example.

    ``mode="circular"``: what leaves one end comes back at the other; ``"zeros"``: zeros come in.
    A shift by s puts ``x[..., i]`` at ``i + s``: the window at offset ``max_shift - s``."""
    shifts = rng.integers(-max_shift, max_shift + 1, size=len(x))
    offsets = (max_shift - shifts)[None, :]
    return _windows(x, max_shift, offsets, "wrap" if mode == "circular" else "constant")


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel (axis 1) of ``x (N, C, ...)``; dtype kept."""
    shape = (-1, *[1] * (x.ndim - 2))
    mean = np.asarray(mean, dtype=x.dtype).reshape(shape)
    std = np.asarray(std, dtype=x.dtype).reshape(shape)
    return (x - mean) / std


# --- the transforms: a kernel, its spec and the shapes it fits --------------------------------


def _shape_error(spec: str, needs: str, shape: tuple[int, ...], hint: str = "") -> ValueError:
    return ValueError(
        f"augment {spec!r} needs examples of shape {needs}. Received: examples of shape "
        f"{shape}.{hint}"
    )


@dataclass(frozen=True)
class RandomCrop:
    """Zero padding of ``padding`` on every spatial side, then a random crop to the size."""

    padding: int

    def __post_init__(self) -> None:
        _check_count("RandomCrop", "padding", self.padding, 1)

    @property
    def spec(self) -> str:
        return f"crop{self.padding}"

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_crop(x, self.padding, rng)

    def check(self, shape: tuple[int, ...]) -> None:
        """ValueError unless ``shape`` is an image or volume with every side above padding."""
        if len(shape) == 2:
            hint = f" For 1D signals (C, L) use shift{self.padding}z, the 1D crop."
            raise _shape_error(self.spec, "(C, H, W) or (C, D, H, W)", shape, hint)
        if len(shape) not in (3, 4):
            raise _shape_error(self.spec, "(C, H, W) or (C, D, H, W)", shape)
        if self.padding >= min(shape[1:]):
            raise ValueError(
                f"augment {self.spec!r}: the padding must be smaller than every spatial size, "
                f"or a crop may hold no data. Received: padding {self.padding}, examples of "
                f"shape {shape}."
            )


@dataclass(frozen=True)
class RandomFlip:
    """A horizontal flip (the last axis) of each image with probability ``p``."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError(f"RandomFlip: p must be in [0, 1]. Received: {self.p!r}.")

    @property
    def spec(self) -> str:
        return "flip" if self.p == 0.5 else f"flip(p={self.p})"

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_flip(x, rng, self.p)

    def check(self, shape: tuple[int, ...]) -> None:
        """ValueError unless ``shape`` is an image ``(C, H, W)``."""
        if len(shape) != 3:
            hint = " For 1D signals (C, L) use shift<S> or shift<S>z." if len(shape) == 2 else ""
            raise _shape_error(self.spec, "(C, H, W) (images)", shape, hint)


@dataclass(frozen=True)
class RandomShift:
    """A shift of a 1D signal by up to ``max_shift`` either way: ``"circular"`` or ``"zeros"``."""

    max_shift: int
    mode: str = "circular"

    def __post_init__(self) -> None:
        _check_count("RandomShift", "max_shift", self.max_shift, 1)
        if self.mode not in ("circular", "zeros"):
            raise ValueError(
                f"RandomShift: mode must be 'circular' or 'zeros'. Received: {self.mode!r}."
            )

    @property
    def spec(self) -> str:
        return f"shift{self.max_shift}" + ("z" if self.mode == "zeros" else "")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_shift(x, self.max_shift, rng, self.mode)

    def check(self, shape: tuple[int, ...]) -> None:
        """ValueError unless ``shape`` is a 1D signal ``(C, L)`` longer than ``max_shift``."""
        if len(shape) != 2:
            hint = f" For images use crop{self.max_shift}." if len(shape) == 3 else ""
            raise _shape_error(self.spec, "(C, L) (1D signals)", shape, hint)
        if self.max_shift >= shape[1]:
            raise ValueError(
                f"augment {self.spec!r}: the shift must be smaller than the length. Received: "
                f"max_shift {self.max_shift}, examples of shape {shape}."
            )


@dataclass(frozen=True)
class Normalize:
    """``(x - mean) / std`` per channel; one value for every channel, or one per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        m, s = (tuple(float(v) for v in np.ravel(a)) for a in (mean, std))
        if not m or not s or not all(np.isfinite(m)) or not all(v > 0 for v in s):
            raise ValueError(
                f"Normalize: mean must be finite and std positive and finite, one value or one "
                f"per channel. Received: mean={mean!r}, std={std!r}."
            )
        if len(m) > 1 and len(s) > 1 and len(m) != len(s):
            raise ValueError(
                f"Normalize: mean and std must have one value each or one per channel. "
                f"Received: {len(m)} means and {len(s)} stds."
            )
        object.__setattr__(self, "mean", m)  # frozen: set once here
        object.__setattr__(self, "std", s)

    @property
    def spec(self) -> str:
        return "norm" + "/".join(":".join(f"{v:g}" for v in a) for a in (self.mean, self.std))

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        channels = x.shape[1]
        return normalize(x, np.resize(self.mean, channels), np.resize(self.std, channels))

    def check(self, shape: tuple[int, ...]) -> None:
        """ValueError unless the channel count (``shape[0]``) matches the values given."""
        counts = {len(a) for a in (self.mean, self.std) if len(a) > 1}
        if not shape or (counts and counts != {shape[0]}):
            raise _shape_error(self.spec, f"({', '.join(map(str, counts))}, ...)", shape)


def _check_count(where: str, name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{where}: {name} must be an integer >= {low}. Received: {value!r}.")


# --- composition, specs and checks ----------------------------------------------------------


class Compose:
    """Transforms applied in order: ``Compose([RandomCrop(4), RandomFlip()])(x, rng)``.

    Any callable ``(x, rng) -> x`` may take part; its ``spec`` (else its name) describes it in
    checkpoints, and its ``check(shape)``, if it has one, is run by ``check_augment``."""

    def __init__(self, transforms: Iterable[Transform]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(
                    f"augment: every transform must be callable (x, rng) -> x. "
                    f"Received: {type(t).__name__}."
                )

    @property
    def spec(self) -> str:
        """``"crop4,flip"``; ``"none"`` when empty."""
        return ",".join(map(_describe, self.transforms)) or "none"

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.spec!r})"


def _describe(t: Transform) -> str:
    return str(getattr(t, "spec", None) or getattr(t, "__name__", type(t).__name__))


def parse_augment(spec: str) -> Compose:
    """The transforms of a spec like ``"crop4,flip"`` (module docstring); ``"none"`` or ``""``
    gives an empty Compose. Raises ValueError naming the part it cannot read."""
    if not isinstance(spec, str):
        raise TypeError(f"parse_augment: spec must be a str. Received: {type(spec).__name__}.")
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if parts == ["none"]:
        return Compose([])
    return Compose(_parse_one(part, spec) for part in parts)


def _parse_one(part: str, spec: str) -> Transform:
    try:
        if part == "flip":
            return RandomFlip()
        if part.startswith("crop") and part[4:].isdigit():
            return RandomCrop(int(part[4:]))
        if part.startswith("shift") and part[5:].rstrip("z").isdigit():
            zeros = part.endswith("z")
            return RandomShift(int(part[5:].rstrip("z")), "zeros" if zeros else "circular")
        if part.startswith("norm") and part.count("/") == 1:
            mean, std = (tuple(float(v) for v in a.split(":")) for a in part[4:].split("/"))
            return Normalize(mean, std)
    except ValueError as err:
        raise ValueError(f"augment spec {spec!r}: {part!r}: {err}") from None
    raise ValueError(
        f"augment spec {spec!r}: unknown transform {part!r}. Valid: crop<P> (e.g. crop4), flip, "
        f"shift<S> (circular), shift<S>z (zeros shifted in), norm<MEAN>/<STD> (per channel, "
        f"':'-separated), or none; comma-separated, applied in order."
    )


def as_augment(where: str, augment: str | Compose | Sequence[Transform] | None) -> Compose:
    """``augment`` as a Compose: a spec string, a Compose, a list of transforms, or None."""
    if augment is None:
        return Compose([])
    if isinstance(augment, str):
        return parse_augment(augment)
    if isinstance(augment, Compose):
        return augment
    if callable(augment):
        return Compose([augment])
    if isinstance(augment, (list, tuple)):
        return Compose(augment)
    raise TypeError(
        f"{where}: augment must be a spec like 'crop4,flip', a list of transforms or None. "
        f"Received: {type(augment).__name__}."
    )


def check_augment(transforms: Compose | Sequence[Transform], input_shape: Sequence[int]) -> None:
    """ValueError, naming the transform and both shapes, if one does not fit examples of
    ``input_shape`` (no batch axis): flip or crop on 1D signals, shift on images, ..."""
    shape = tuple(int(s) for s in input_shape)
    items = transforms.transforms if isinstance(transforms, Compose) else transforms
    for t in items:
        check = getattr(t, "check", None)
        if check is not None:
            check(shape)


def augment_rng(seed: int | np.random.Generator) -> np.random.Generator:
    """The augmentation's own Generator, derived from ``fit``'s seed without drawing from it:
    the shuffling stream (and so every run without augmentation) stays as it was.

    From a Generator, the new stream depends on its state alone (as the shuffling does): equal
    states, as MPI ranks check they have, give equal augmentations."""
    if isinstance(seed, np.random.Generator):
        return np.random.default_rng(_state_words(seed.bit_generator.state))
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def _state_words(state: object) -> list[int]:
    """The non-negative integers of a bit generator's state dict, in a fixed order."""
    if isinstance(state, dict):
        return [w for key in sorted(state) for w in _state_words(state[key])]
    if isinstance(state, np.ndarray):
        return [int(v) for v in state.ravel()]
    if isinstance(state, (int, np.integer)):
        return [int(state)]
    return []  # the bit generator's name
