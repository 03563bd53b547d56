"""Training recipes: the settings ``deltanet train`` uses for a (model, dataset) pair.

One table serves the command (``deltanet train`` applies a pair's recipe over ``TRAIN_DEFAULTS``,
under the flags given), its help (``deltanet train --help`` lists the table) and the README
(``markdown_table()``). The order is defaults < the pair's recipe < flags given; a resumed run
keeps the settings it started with and is never given a recipe anew.

Every figure below was measured with ``deltanet train --data DATA --model MODEL`` and nothing
else (seed 0), on the 2-core machine the project is developed on; seeds 1-3 are noted where
they were run. A pair without a recipe trains with the plain defaults.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

# Settings a recipe may not set: what the run trains on, and its seed, are the user's choice.
NOT_IN_RECIPES = ("model", "data", "seed")
# Settings that change how the data is read: applied only when --model names the model (with no
# --model the model is chosen from the data as read, so its recipe cannot change the reading).
DATA_SHAPING = ("image_size", "image_mode")
# Settings that only mean something with another one: a recipe's are dropped when the flags
# given choose another value of what they belong to (--lr-policy fixed drops the recipe's
# multistep stepvalues, --optimizer adam its SGD momentum).
DEPENDS_ON = {
    **dict.fromkeys(
        ("gamma", "stepsize", "stepvalues", "power", "max_iter", "min_lr"), "lr_policy"
    ),
    "momentum": "optimizer",
}


@dataclass(frozen=True)
class Recipe:
    """The settings of one (model, data) pair and what they measured (test accuracy, seed 0)."""

    model: str
    data: str
    settings: Mapping[str, Any]
    accuracy: float | None  # test accuracy with seed 0, None where it cannot be trained here
    seconds: float | None  # the whole command, as ``metrics.json``'s ``seconds``
    note: str = ""
    seeds: Mapping[int, float] = field(default_factory=dict)  # other seeds' test accuracies

    @property
    def name(self) -> str:
        """``"cnn1d/mnist1d"``: recorded as ``recipe`` in the run's config.json."""
        return f"{self.model}/{self.data}"

    def argv(self) -> list[str]:
        """The recipe as ``deltanet train`` flags, e.g. ``["--epochs", "30", ...]``."""
        args: list[str] = []
        for key, value in self.settings.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + key.replace("_", "-"))
            else:
                args += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
        return args

    def command(self) -> str:
        """The command that measured the recipe: only the model and the data are named."""
        return f"deltanet train --model {self.model} --data {self.data}"


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "digits_cnn",
        "digits",
        # Random shifts of up to one pixel (zero padding 1, a random 8x8 crop) are what takes the
        # 8x8 digits past 99%; batch 64 at twice the rate keeps the run as short as before.
        {"epochs": 20, "batch_size": 64, "lr": 4e-3, "augment": "crop1"},
        accuracy=0.9944,
        seconds=4.6,
        note="the main job (no --model, no --data)",
        seeds={1: 0.9917, 2: 0.9917, 3: 0.9917},
    ),
    Recipe(
        "cnn1d",
        "mnist1d",
        # examples/mnist1d_conv1d.py's optimiser (batch 100, lr 1e-2, 30 epochs) plus circular
        # shifts of up to 2 steps: without them the zoo's cnn1d stops at 95.0%.
        {"epochs": 30, "batch_size": 100, "lr": 1e-2, "augment": "shift2"},
        accuracy=0.971,
        seconds=6.0,
        seeds={1: 0.971, 2: 0.961, 3: 0.968},
    ),
    Recipe(
        "resnet1d",
        "mnist1d",
        # BN makes the large rate safe; the circular shifts are the 1D crop (the signals are
        # shifted copies of 10 templates, so shift invariance is what generalises).
        {"epochs": 20, "batch_size": 100, "lr": 1e-2, "augment": "shift2"},
        accuracy=0.991,
        seconds=92,
        note="92-150 s as the shared load varied",
    ),
    Recipe(
        "bireal_resnet1d",
        "mnist1d",
        # resnet1d's recipe as it is: 2.2 points under its float twin (the target: within 4).
        {"epochs": 20, "batch_size": 100, "lr": 1e-2, "augment": "shift2"},
        accuracy=0.969,
        seconds=47,
        note="2.2 points under its float twin resnet1d (99.1%)",
    ),
    Recipe(
        "bireal_resnet20",
        "digits",
        # The 1x28x28 variant on the digits upsampled to 28x28 (as MNIST); crop2 there is
        # about half a pixel of the 8x8 original. A lower rate than the float nets': the
        # signs of the latent weights flip less often.
        {
            "image_size": "28x28",
            "epochs": 15,
            "batch_size": 64,
            "lr": 5e-3,
            "augment": "crop2",
        },
        accuracy=0.9889,
        seconds=77,
        note="1x28x28 variant; binary_lenet on the 8x8 digits: 98.3%",
    ),
    Recipe(
        "resnet20",
        "cifar10",
        # Not trained here: no CIFAR-10 on the development machine, and one epoch takes
        # minutes. He et al.'s recipe: SGD with momentum 0.9, lr 0.1 divided by 10 at 32k and
        # 48k iterations, weight decay 1e-4, batch 128, 64k iterations (164 epochs of 391
        # batches; our split keeps 45,000 for training: 352 batches an epoch, 57,728 in all,
        # so the steps come at the same fractions of the run), 4-pixel crops and flips.
        {
            "epochs": 164,
            "batch_size": 128,
            "optimizer": "sgd",
            "momentum": 0.9,
            "lr": 0.1,
            "weight_decay": 1e-4,
            "lr_policy": "multistep",
            "stepvalues": [28864, 43296],
            "gamma": 0.1,
            "augment": "crop4,flip",
        },
        accuracy=None,
        seconds=None,
        note="not trained here; He et al. (2016) report 91.25% for ResNet-20",
    ),
)


def find_recipe(model: str | None, data: str) -> Recipe | None:
    """The recipe of ``(model, data)``, or None (no model yet, a file, or a pair without one)."""
    for recipe in RECIPES:
        if recipe.model == model and recipe.data == data:
            return recipe
    return None


def apply_recipe(
    config: dict[str, Any], given: Collection[str], *, shape_data: bool = True
) -> Recipe | None:
    """Set ``config``'s settings from its (model, data) recipe except those in ``given``.

    ``config["recipe"]`` names the recipe applied (None: none). ``shape_data=False`` leaves the
    settings that change how the data is read (``DATA_SHAPING``) alone: the data is read already.
    """
    recipe = find_recipe(config.get("model"), str(config.get("data")))
    config["recipe"] = None if recipe is None else recipe.name
    if recipe is not None:
        for key, value in recipe.settings.items():
            owner = DEPENDS_ON.get(key)
            if owner is not None and owner in given and config[owner] != recipe.settings.get(owner):
                continue  # the flags chose another policy/optimizer: this belongs to the recipe's
            if key not in given and (shape_data or key not in DATA_SHAPING):
                config[key] = list(value) if isinstance(value, list) else value
    return recipe


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def help_text() -> str:
    """The table for ``deltanet train --help``'s epilog: pair, flags it sets, measured figure."""
    lines = [
        "recipes (the defaults of a model and dataset pair; flags given override them;",
        "test accuracy with seed 0 on 2 cores):",
    ]
    for r in RECIPES:  # two lines each: the flags alone are up to 100 characters
        figure = "not trained here" if r.accuracy is None else _percent(r.accuracy)
        figure += "" if r.seconds is None else f" in {_seconds(r.seconds)}"
        lines += [f"  {r.name} ({figure})", f"      {' '.join(r.argv())}"]
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's table: pair, the command, the settings the recipe sets, accuracy, time."""
    rows = [
        "| model / data | command | recipe (settings over the defaults) | test accuracy "
        "(seed 0) | seeds 1-3 | time | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in RECIPES:
        seeds = ", ".join(_percent(r.seeds[s]) for s in sorted(r.seeds)) or "-"
        rows.append(
            f"| `{r.model}` / {r.data} | `{r.command()}` | `{' '.join(r.argv())}` | "
            f"{_percent(r.accuracy)} | {seeds} | {_seconds(r.seconds)} | {r.note} |"
        )
    return "\n".join(rows) + "\n"
