"""Training recipes (``deltanet.cli.recipes``): the table's entries are valid settings of real
models and datasets, ``deltanet train`` applies them under the flags given, a resumed run keeps
the settings it started with, and ``--help`` lists the table. No full training: the runs here
take one or two epochs of a tiny dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deltanet.cli import main, recipes
from deltanet.cli.common import TRAIN_DEFAULTS
from deltanet.cli.main import build_parser
from deltanet.cli.train import _check_numbers, _given, _resolve
from deltanet.data import DATASETS
from deltanet.data.augment import check_augment, parse_augment
from deltanet.data.images import parse_image_size
from deltanet.zoo import MODELS, default_input_shape

ROWS = pytest.mark.parametrize("recipe", recipes.RECIPES, ids=lambda r: r.name)


def parse(*argv: str):
    return build_parser().parse_args(["train", *argv])


def example_shape(recipe: recipes.Recipe) -> tuple[int, ...]:
    """The shape of one example the recipe's model takes from its data (at its image size)."""
    shape = default_input_shape(recipe.model)
    size = recipe.settings.get("image_size")
    if size is None:
        return shape
    height, width = parse_image_size(size)
    return (1, height, width)  # the recipes resize grayscale data (digits, mnist)


# --- the table ------------------------------------------------------------------------------


def test_one_recipe_per_pair():
    names = [r.name for r in recipes.RECIPES]
    assert len(names) == len(set(names))


@ROWS
def test_recipe_names_a_zoo_model_and_a_named_dataset(recipe):
    assert recipe.model in MODELS
    assert recipe.data in DATASETS
    assert recipes.find_recipe(recipe.model, recipe.data) is recipe


@ROWS
def test_recipe_sets_only_train_settings(recipe):
    keys = set(recipe.settings)
    assert keys <= set(TRAIN_DEFAULTS) - {"recipe"}, keys - set(TRAIN_DEFAULTS)
    assert not keys & set(recipes.NOT_IN_RECIPES)


@ROWS
def test_recipe_passes_the_commands_own_checks(recipe):
    """As flags, the recipe parses (choices, types), reads back as its own settings, and passes
    the checks train makes before any work (numbers, augmentation against the data's shape)."""
    args = parse("--model", recipe.model, "--data", recipe.data, *recipe.argv())
    given = _given(args)
    assert {k: given[k] for k in recipe.settings} == dict(recipe.settings)
    _check_numbers({**TRAIN_DEFAULTS, **recipe.settings})
    check_augment(parse_augment(recipe.settings.get("augment", "none")), example_shape(recipe))


@ROWS
def test_recipe_states_what_it_measured(recipe):
    assert recipe.accuracy is None or 0 < recipe.accuracy <= 1
    assert recipe.seconds is None or recipe.seconds > 0
    if recipe.accuracy is None:
        assert recipe.note, "a recipe not measured here says why"


def test_no_recipe_for_files_or_unknown_pairs():
    assert recipes.find_recipe("mlp", "digits") is None
    assert recipes.find_recipe(None, "digits") is None
    assert recipes.find_recipe("digits_cnn", "/data/digits.npz") is None


# --- applying it ----------------------------------------------------------------------------


def test_flags_given_override_the_recipe(tmp_path):
    recipe = recipes.find_recipe("cnn1d", "mnist1d")
    assert recipe is not None and recipe.settings["epochs"] != 3
    args = parse("--model", "cnn1d", "--data", "mnist1d", "--epochs", "3", "--out", "x")
    args.resume = None
    _, config, _ = _resolve(args, check_out=False)
    assert config["epochs"] == 3
    assert config["recipe"] == "cnn1d/mnist1d"
    for key, value in recipe.settings.items():
        if key != "epochs":
            assert config[key] == value, key


def test_pair_without_a_recipe_keeps_the_defaults():
    args = parse("--model", "mlp", "--data", "digits")
    args.resume = None
    _, config, _ = _resolve(args, check_out=False)
    assert config["recipe"] is None
    assert {k: config[k] for k in ("epochs", "batch_size", "lr", "augment")} == {
        k: TRAIN_DEFAULTS[k] for k in ("epochs", "batch_size", "lr", "augment")
    }


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny .npz of three classes of 8x8 images, with a recipe of its own for digits_cnn."""
    rng = np.random.default_rng(0)
    y = np.arange(48) % 3
    x = 0.1 * rng.random((48, 1, 8, 8)).astype(np.float32)
    for k in range(3):
        x[y == k, 0, 2 * k + 1 : 2 * k + 3, :] += 1.0
    path = (tmp_path / "tiny.npz").resolve()
    np.savez(path, x=x, y=y)
    settings = {"epochs": 1, "batch_size": 16, "lr": 0.01, "augment": "crop1"}
    own = recipes.Recipe("digits_cnn", str(path), settings, accuracy=None, seconds=None)
    monkeypatch.setattr(recipes, "RECIPES", (own,))
    return path


def train(capsys, *argv) -> dict:
    """``deltanet train --quiet ARGV`` in-process; the run's config.json."""
    status = main(["train", "--quiet", *map(str, argv)])
    assert status == 0, capsys.readouterr().err
    out = Path(argv[list(argv).index("--out") + 1])
    return json.loads((out / "config.json").read_text())


def test_model_chosen_from_the_data_gets_its_recipe(tiny, tmp_path, capsys):
    config = train(capsys, "--data", tiny, "--out", tmp_path / "run")
    assert config["model"] == "digits_cnn" and config["recipe"] == f"digits_cnn/{tiny}"
    assert (config["epochs"], config["batch_size"], config["lr"], config["augment"]) == (
        1, 16, 0.01, "crop1",
    )  # fmt: skip


def test_resumed_run_keeps_its_recipe(tiny, tmp_path, capsys, monkeypatch):
    """A recipe changed after the run started does not reach it: resuming keeps its settings."""
    first = train(capsys, "--model", "digits_cnn", "--data", tiny, "--out", tmp_path / "run")
    assert first["recipe"] == f"digits_cnn/{tiny}" and first["batch_size"] == 16
    changed = recipes.Recipe(
        "digits_cnn", str(tiny), {"batch_size": 8, "lr": 0.1}, accuracy=None, seconds=None
    )
    monkeypatch.setattr(recipes, "RECIPES", (changed,))
    last = tmp_path / "run" / "checkpoints" / "last.safetensors"
    resumed = train(capsys, "--resume", last, "--epochs", 2, "--out", tmp_path / "run")
    assert resumed == {**first, "epochs": 2}


# --- where it is shown ----------------------------------------------------------------------


def test_help_lists_the_table(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "recipes" in out
    for recipe in recipes.RECIPES:
        assert recipe.name in out
        assert " ".join(recipe.argv()) in " ".join(out.split())


def test_markdown_table_has_a_row_per_recipe():
    lines = recipes.markdown_table().splitlines()
    assert len(lines) == 2 + len(recipes.RECIPES)
    for recipe, line in zip(recipes.RECIPES, lines[2:]):
        assert line.startswith(f"| `{recipe.model}` / {recipe.data} |")
        assert recipe.command() in line


def test_momentum_reaches_sgd_and_is_refused_for_adam(tiny, tmp_path, capsys, monkeypatch):
    import deltanet.optim as optim

    made = []
    real = optim.make_optimizer

    def spy(name, params, **kwargs):
        made.append((name, kwargs))
        return real(name, params, **kwargs)

    monkeypatch.setattr(optim, "make_optimizer", spy)
    out = tmp_path / "sgd"
    config = train(capsys, "--data", tiny, "--optimizer", "sgd", "--momentum", "0.9", "--out", out)
    assert config["momentum"] == 0.9 and made[-1] == ("sgd", {"lr": 0.01, "momentum": 0.9})
    assert main(["train", "--quiet", "--data", str(tiny), "--momentum", "0.9"]) == 2
    assert (
        "--momentum applies to sgd and rmsprop, not to --optimizer adam" in capsys.readouterr().err
    )
    args = ["train", "--quiet", "--data", str(tiny), "--optimizer", "sgd", "--momentum", "1.5"]
    assert main(args) == 2
    assert "--momentum must be in [0, 1). Received: 1.5" in capsys.readouterr().err


def test_readme_shows_the_table_as_it_is():
    """The README's recipe table is ``markdown_table()``: regenerate it when a recipe changes."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert recipes.markdown_table() in readme.read_text(encoding="utf-8")


def test_a_policy_or_optimizer_given_drops_the_recipes_own_parameters():
    config = {**TRAIN_DEFAULTS, "model": "resnet20", "data": "cifar10", "lr_policy": "fixed"}
    config["optimizer"] = "adam"
    recipes.apply_recipe(config, {"model", "data", "lr_policy", "optimizer"})
    assert config["recipe"] == "resnet20/cifar10" and config["epochs"] == 164
    assert config["stepvalues"] is None and config["gamma"] is None and config["momentum"] is None
    _check_numbers(config)
    same = {**TRAIN_DEFAULTS, "model": "resnet20", "data": "cifar10", "optimizer": "sgd"}
    recipes.apply_recipe(same, {"model", "data", "optimizer"})  # the recipe's own choice: kept
    assert same["momentum"] == 0.9 and same["stepvalues"] == [28864, 43296]
