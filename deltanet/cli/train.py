"""``deltanet train``: everything is checked before the run directory is created; then fit,
one evaluation on the held-out test set, and the run's files (model, history, metrics, plots).
How run directories are made, resumed and removed after an early failure: ``rundir``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from deltanet.cli import recipes, rundir
from deltanet.cli.common import (
    TRAIN_DEFAULTS,
    CliError,
    default_model,
    load_data,
    make_plots,
    standardized,
    write_json,
)

MAX_EPOCHS = 10**6
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")  # the optimizers that take a momentum argument
SCHEDULE_ARGS = ("gamma", "stepsize", "stepvalues", "power", "max_iter", "min_lr")


def run_train(args: argparse.Namespace) -> int:
    """Train as ``args`` say; returns 0. Bad input raises before anything is written.

    ``--distributed`` (under ``mpiexec -n N``): every rank loads the data and trains its shard;
    rank 0 chooses the run directory and alone prints and writes files. An error on any rank
    aborts the whole job (MPI Abort), so no rank is left waiting.
    """
    if not getattr(args, "distributed", False):
        if getattr(args, "sync_batch_norm", False):
            raise CliError("--sync-batch-norm needs --distributed.")
        return _run_train(args, None)
    from deltanet import distributed as dist

    if not dist.available():
        raise CliError(
            '--distributed needs mpi4py and an MPI library: pip install "deltanet[mpi]".'
        )
    try:
        return _run_train(args, dist)
    except Exception as err:
        if dist.world_size() > 1:
            dist.abort(f"deltanet train: error: {err}", 2)
        raise


def _run_train(args: argparse.Namespace, dist: Any) -> int:
    started = time.perf_counter()
    lead = dist is None or dist.rank() == 0  # the rank that prints and writes
    out, config, resume = _resolve(args, check_out=lead)
    ds = _load_data(config, args)
    if resume is not None:
        _check_resumed_shape(resume, args.resume, tuple(ds.input_shape), config["data"])
    if config["model"] is None:  # chosen from the data's shape: only now is its recipe known
        config["model"] = default_model(tuple(ds.input_shape))
        recipes.apply_recipe(config, _given(args), shape_data=False)
        _check_numbers(config)
    _check_augment(config, tuple(ds.input_shape), resume)
    model = _build(config, ds)
    train, val, standardizer = _split(config, ds)
    optimizer, schedule = _optimizer(config, model, len(train[0]))
    claim = rundir.NewRun() if lead and (resume is None or not resume.in_place) else None
    try:  # from the directory's claim on: a failure before the first checkpoint undoes it
        if claim is not None:  # everything is checked: the run directory is made now
            out = claim.claim(out, config)
            if resume is not None:
                rundir.carry_best(resume, out)
        if dist is not None:  # the directory rank 0 made
            out = Path(dist.broadcast_text(str(out) if lead else ""))
        assert out is not None
        say = (lambda *a: None) if args.quiet or not lead else print
        _announce(say, config, args, out, ds, model, train, val, dist)
        run = _run_info(config, ds, standardizer)
        history = _fit(config, args, out, run, (model, optimizer, schedule), train, val)
    except BaseException:
        if claim is not None:
            claim.discard()
        raise
    test = standardized(ds.x_test, standardizer)  # _finish reads a mapped one batch by batch
    metrics = _finish(config, out, run, model, history, ds, test, started, dist)
    if not lead:
        return 0
    say(
        f"test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f} "
        f"({len(ds.y_test)} held-out examples); {metrics['seconds']:.1f} s in all"
    )
    say(f"wrote {out / 'model.safetensors'}, metrics.json, history.csv and plots")
    return 0


def _announce(say, config, args, out: Path, ds, model, train, val, dist) -> None:
    """What is trained on what, and where the run directory is."""
    say(
        f"deltanet train: {config['model']} ({model.num_parameters():,} parameters) on "
        f"{ds.name}: {len(ds.y_train)} training examples ({len(train[1])} to train, "
        f"{0 if val is None else len(val[1])} to validate), {len(ds.y_test)} held out for the "
        f"test, shape {tuple(ds.input_shape)}, {ds.num_classes} classes"
    )
    recipe = recipes.find_recipe(config["model"], config["data"])
    if config.get("recipe") and recipe is not None:
        say(f"recipe {recipe.name}: {' '.join(recipe.argv())} (flags given override it)")
    if config.get("augment", "none") != "none":
        say(f"augmentation of the training batches: {config['augment']}")
    if dist is not None:
        sync = "synchronised" if args.sync_batch_norm else "per rank"
        say(f"data-parallel over {dist.world_size()} MPI ranks (batch-norm statistics: {sync})")
    say(f"run directory: {out}" + (f" (resuming from {args.resume})" if args.resume else ""))


def _resolve(
    args: argparse.Namespace, check_out: bool = True
) -> tuple[Path | None, dict, rundir.Resume | None]:
    """The run directory (None: a new one), the settings (defaults < the pair's recipe < args;
    resumed: the run's own < args) and the checkpoint to resume. Every check that needs no data
    is made here."""
    given = _given(args)
    resume = rundir.read_resume(args.resume) if args.resume else None
    if resume is None:
        out = Path(args.out) if args.out else None
        config = {**TRAIN_DEFAULTS, **given}
        recipes.apply_recipe(config, given)  # --model's; with no --model, once it is chosen
    else:
        out = rundir.resume_out(resume, args.out)
        config = {**TRAIN_DEFAULTS, **rundir.resume_settings(resume, given)}
    _check_numbers(config)
    if resume is not None:
        rundir.check_epochs_left(resume, config["epochs"], "epochs" in given)
    if check_out and out is not None:  # other ranks may see the files rank 0 wrote already
        if resume is None:
            rundir.check_out_dir(out)
        else:
            rundir.check_resume_out(resume, out)
    return out, config, resume


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (a flag not given is None in ``args``)."""
    given = {k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k, None) is not None}
    given.update({k: getattr(args, k) for k in ("data_dir",) if getattr(args, k, None)})
    return given


def _check_numbers(c: dict[str, Any]) -> None:
    for key, low, high in (("epochs", 1, MAX_EPOCHS), ("batch_size", 1, None), ("warmup", 0, None)):
        value = c[key]
        if not isinstance(value, int) or value < low or (high is not None and value > high):
            flag = "--" + key.replace("_", "-")
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise CliError(f"{flag} must be an integer {bound}. Received: {value!r}.")
    if not c["lr"] > 0 or not np.isfinite(c["lr"]):
        raise CliError(f"--lr must be a positive number. Received: {c['lr']!r}.")
    if c["min_lr"] is not None and not 0 <= c["min_lr"] <= c["lr"]:
        raise CliError(
            f"--min-lr must be in [0, --lr] (cosine decays from --lr down to --min-lr). "
            f"Received: --min-lr {c['min_lr']!r}, --lr {c['lr']!r}."
        )
    if not 0 <= c["val_fraction"] < 1:
        raise CliError(f"--val-fraction must be in [0, 1). Received: {c['val_fraction']!r}.")
    if c["weight_decay"] is not None and not c["weight_decay"] >= 0:
        raise CliError(f"--weight-decay must be >= 0. Received: {c['weight_decay']!r}.")
    if c["momentum"] is not None:
        if c["optimizer"] not in MOMENTUM_OPTIMIZERS:
            raise CliError(
                f"--momentum applies to {' and '.join(MOMENTUM_OPTIMIZERS)}, not to --optimizer "
                f"{c['optimizer']} (adam's and adamw's betas play that part)."
            )
        if not 0 <= c["momentum"] < 1:
            raise CliError(f"--momentum must be in [0, 1). Received: {c['momentum']!r}.")


def _load_data(config: dict[str, Any], args: argparse.Namespace) -> Any:
    """The dataset, validated by its loader (shape, labels, finite values) before training."""
    from deltanet.data import DATASETS

    data = config["data"]
    if data.lower().endswith(".npz"):
        config["data"] = data = str(Path(data).expanduser().resolve())  # evaluate finds it later
        if not os.path.isfile(data):
            raise CliError(f"--data: no file at {data!r}.")
    elif data not in DATASETS and ("/" in data or os.sep in data or os.path.exists(data)):
        if not os.path.isdir(os.path.expanduser(data)):
            raise CliError(f"--data: no image folder at {data!r}.")
        config["data"] = data = str(Path(data).expanduser().resolve())
    download = bool(getattr(args, "download", False))
    ds = load_data(
        data, "train", data_dir=config.get("data_dir"), seed=config["seed"], download=download,
        image_size=config.get("image_size"), image_mode=config.get("image_mode"),
        bad_images=config.get("bad_images") or "error",
    )  # fmt: skip
    return ds


def _check_resumed_shape(
    resume: rundir.Resume, path: str, shape: tuple[int, ...], data: str
) -> None:
    """A resumed model must take the data's examples: refused before any work, naming both
    shapes (a model with global pooling would otherwise train on other sizes silently).
    ``path`` is --resume as given; the shape is the one ``read_resume`` found in the file."""
    saved = resume.input_shape
    if saved is not None and saved != shape:
        raise CliError(
            f"--resume: the model of {path} takes examples of shape {saved}, but --data "
            f"{data} gives examples of shape {shape}."
        )


def _check_augment(config: dict[str, Any], shape: tuple, resume: rundir.Resume | None) -> None:
    """--augment must fit the data's examples (no flip on 1D signals), and a run resumed from
    before --augment existed cannot start augmenting (its checkpoint has no augmentation
    state); both refused before the run directory is made."""
    from deltanet.data.augment import check_augment, parse_augment

    spec = config.get("augment") or "none"
    if resume is not None and "augment" not in resume.config and spec != "none":
        raise CliError(
            f"--augment {spec}: the resumed run ({resume.path}) trained without augmentation; "
            f"a resumed run keeps its settings. Drop --augment, or start a new run."
        )
    try:
        check_augment(parse_augment(spec), shape)
    except ValueError as err:
        raise CliError(f"--augment {spec}: {err}") from None


def _build(config: dict[str, Any], ds: Any) -> Any:
    from deltanet.zoo import build_model

    options = {"dropout": config["dropout"]} if config["dropout"] is not None else {}
    return build_model(
        config["model"],
        input_shape=tuple(ds.input_shape),
        num_classes=ds.num_classes,
        seed=config["seed"],
        **options,
    )


def _split(config: dict[str, Any], ds: Any) -> tuple[tuple, tuple | None, Any]:
    """``(train, val or None, standardizer or None)``: validation is cut from the training set.

    A memory-mapped training set (an image folder's cache) is split and standardised a chunk
    at a time into memory-mapped files (``data.mapped.split_mapped``), so the memory it takes does
    not grow with the folder's size; in-memory datasets take the in-memory path below."""
    from deltanet.data import Standardizer, train_val_split
    from deltanet.data.mapped import is_mapped, split_mapped

    x, y = ds.x_train, ds.y_train
    if is_mapped(x):
        fraction, seed = config["val_fraction"], config["seed"]
        return split_mapped(x, y, fraction, seed=seed, standardize=config["standardize"])
    val = None
    if config["val_fraction"] > 0:
        x, y, xv, yv = train_val_split(x, y, config["val_fraction"], seed=config["seed"])
        val = (xv, yv)
    standardizer = Standardizer.fit(x) if config["standardize"] else None
    if standardizer is not None:
        x = standardizer.transform(x)
        val = None if val is None else (standardizer.transform(val[0]), val[1])
    return (x, y), val, standardizer


def _optimizer(config: dict[str, Any], model: Any, n_train: int) -> tuple[Any, Any]:
    from deltanet.optim import make_optimizer
    from deltanet.schedules import make_schedule

    kwargs = {"lr": config["lr"]}
    if config["weight_decay"] is not None:
        kwargs["weight_decay"] = config["weight_decay"]
    if config["momentum"] is not None:
        kwargs["momentum"] = config["momentum"]
    optimizer = make_optimizer(config["optimizer"], model, **kwargs)
    steps = -(-n_train // config["batch_size"])
    total = config["epochs"] * steps
    if config["warmup"] >= total:
        raise CliError(
            f"--warmup {config['warmup']} must be shorter than the run: {total} iterations "
            f"(--epochs {config['epochs']} of {steps} batches of --batch-size "
            f"{config['batch_size']})."
        )
    params = {k: config[k] for k in SCHEDULE_ARGS if config[k] is not None}
    if config["lr_policy"] in ("poly", "cosine"):
        params.setdefault("max_iter", total)
    if config["warmup"]:
        params["warmup_iters"] = config["warmup"]
    try:
        schedule = make_schedule(config["lr_policy"], config["lr"], **params)
    except ValueError as err:
        raise CliError(f"--lr-policy {config['lr_policy']}: {err}") from None
    return optimizer, schedule


def _run_info(config: dict[str, Any], ds: Any, standardizer: Any) -> dict[str, Any]:
    """What evaluate/predict/plot need to use a model file: its data, shapes, preprocessing."""
    return {
        "model": config["model"],
        "data": config["data"],
        "data_dir": config.get("data_dir"),
        "input_shape": list(ds.input_shape),
        "num_classes": ds.num_classes,
        "class_names": list(ds.class_names),
        "standardizer": None if standardizer is None else standardizer.to_dict(),
        "seed": config["seed"],
    }


def _fit(config, args, out: Path, run: dict, trainer: tuple, train, val) -> Any:
    from deltanet.train import CSVLogger, ModelCheckpoint, fit

    class RunCheckpoint(ModelCheckpoint):
        """Checkpoints that carry the run's description and settings (so evaluate/predict take
        them, and a resumed run keeps its settings). config.json and the rows of history.csv
        are written after the checkpoint of their epoch: the run directory never describes an
        epoch its checkpoints do not hold (a resumed run cuts history.csv back to its
        checkpoint)."""

        def __init__(self) -> None:
            super().__init__(out / "checkpoints", monitor="val_loss" if val else "loss")
            self.log = CSVLogger(out / rundir.HISTORY_FILE)
            self.config_due = True

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            super().on_train_begin(logs)
            self.log.set_state(self.state)
            self.log.on_train_begin(logs)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            super().on_epoch_end(epoch, logs)
            if self.config_due:  # a resumed run's settings (its --epochs) from its first epoch
                write_json(out / rundir.CONFIG_FILE, config)
                self.config_due = False
            self.log.on_epoch_end(epoch, logs)

        def _save(self, path: str, metadata: dict[str, Any]) -> None:
            super()._save(path, {**metadata, "run": {**run, "config": config}})

    model, optimizer, schedule = trainer
    return fit(
        model,
        "cross_entropy",
        optimizer,
        train,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        validation_data=val,
        schedule=schedule,
        # extra callbacks of a caller that runs train in-process (deltanet serve's live view)
        callbacks=[RunCheckpoint(), *getattr(args, "callbacks", ())],
        seed=config["seed"],
        verbose=0 if args.quiet else 1,
        resume_from=args.resume,
        distributed=bool(getattr(args, "distributed", False)),
        sync_batch_norm=bool(getattr(args, "sync_batch_norm", False)),
        augment=config.get("augment"),
    )


def _finish(config, out: Path, run: dict, model, history, ds, x_test, started, dist) -> dict:
    """Evaluate on the test set once; write model.safetensors, metrics.json and the plots.

    Distributed: the ranks share the evaluation; rank 0 alone predicts (for the confusion
    matrix and plots) and writes."""
    from deltanet import io
    from deltanet.metrics import confusion_matrix
    from deltanet.train import evaluate, predict

    scores = evaluate(model, "cross_entropy", x_test, ds.y_test, distributed=dist is not None)
    if dist is not None and dist.rank() != 0:
        return scores
    y_pred, _ = predict(model, x_test)
    cm = confusion_matrix(ds.y_test, y_pred, ds.num_classes)
    logs = history.history
    train_seconds = float(sum(logs.get("seconds", [])))
    metrics = {
        "test_accuracy": scores["accuracy"],
        "test_loss": scores["loss"],
        **({"test_top5": scores["top5"]} if "top5" in scores else {}),
        "epochs": len(history.epoch),
        "seconds": time.perf_counter() - started,
        "train_seconds": train_seconds,
        "images_per_second": float(np.mean(logs.get("images_per_second", [0.0]))),
        **{f"final_{k}": v[-1] for k, v in logs.items() if k in ("loss", "accuracy") and v},
        **{f"final_{k}": v[-1] for k, v in logs.items() if k.startswith("val_") and v},
        "model": config["model"],
        "num_parameters": model.num_parameters(),
        "data": config["data"],
        "train_size": len(ds.y_train),
        "test_size": len(ds.y_test),
        "seed": config["seed"],
        "ranks": 1 if dist is None else dist.world_size(),
        "config": config,
    }
    run = {**run, "test_accuracy": scores["accuracy"]}
    io.save(model, out / "model.safetensors", metadata={"run": run})
    make_plots(out, history, model, (ds.x_test, ds.y_test, y_pred, cm), list(ds.class_names))
    metrics["seconds"] = time.perf_counter() - started  # the whole command, plots included
    write_json(out / "metrics.json", metrics)
    return metrics
