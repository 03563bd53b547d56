"""Run directories of ``deltanet train``: made exclusively, resumed only where they belong, and
removed again when a new run fails before its first checkpoint.

A run directory describes the state of its checkpoints: ``config.json`` (the settings),
``history.csv`` (one row per epoch of ``checkpoints/last.safetensors``), ``checkpoints/``; and,
once the run has finished, ``model.safetensors``, ``metrics.json`` and the plots.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from deltanet.cli.common import CliError, plain, read_json, same_path

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
CHECKPOINTS = "checkpoints"
# Settings a resumed run may be given anew; every other one is the run's own.
RESUME_MAY_CHANGE = ("epochs", "data_dir")


def new_run_dir(model: str, data: str, root: str | os.PathLike = "runs") -> Path:
    """Make ``runs/<model>-<data>-<timestamp>`` (``-2``, ``-3``, ... when taken) and return it.

    ``os.mkdir`` fails on an existing directory, so two runs started in the same second never
    share one: the second takes the next suffix."""
    # a file's stem, a folder's name (an image folder is given as its absolute path)
    stem = f"{model}-{Path(data).stem if data.endswith('.npz') else Path(data).name or data}-"
    stem += time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(root, exist_ok=True)
    n = 1
    while True:
        path = Path(root) / (stem if n == 1 else f"{stem}-{n}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1


def check_out_dir(out: Path) -> None:
    """``--out`` of a new run: absent, or an empty directory (a run is never overwritten)."""
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {str(out)!r} exists and is not a directory.")
    if out.is_dir() and any(out.iterdir()):
        last = out / CHECKPOINTS / "last.safetensors"
        hint = (
            f"or continue that run with --resume {last}"
            if last.is_file()
            else "or delete it (it holds no checkpoint to resume from)"
        )
        raise CliError(
            f"--out {str(out)!r} exists and is not empty: choose another directory, {hint}."
        )


class NewRun:
    """The directory of a new run (or of a resumed one's new ``--out``), claimed with
    ``claim`` and given up with ``discard`` when the run fails before its first checkpoint.

    It records what it made as it makes it, so that an interrupt at any moment is undone."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.made = False  # the directory itself was made here
        self.owned = False  # config.json was created here: the directory is this run's

    def claim(self, out: Path | None, config: dict[str, Any]) -> Path:
        """Make ``out`` (None: a new directory under ``runs/``), or take it when it exists and
        is empty, and create its ``config.json``. The file is created exclusively: of two runs
        aiming at the same ``--out`` at once, the second stops here."""
        if out is None:
            self.path = new_run_dir(config["model"], config["data"])
            self.made = True
        else:
            check_out_dir(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            self.path = out
            try:
                out.mkdir()
                self.made = True
            except FileExistsError:
                pass
        text = json.dumps(config, indent=2, default=plain) + "\n"
        try:
            fd = os.open(self.path / CONFIG_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raise CliError(
                f"--out {str(self.path)!r}: another run started in it meanwhile; choose another "
                "directory."
            ) from None
        self.owned = True
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return self.path

    def discard(self) -> None:
        """Undo the claim unless the run has a checkpoint: remove the files this run wrote (and
        the directory, if made here), so that the same ``--out`` can be used again."""
        if self.path is None:
            return
        ckpts = self.path / CHECKPOINTS
        if (ckpts / "last.safetensors").exists():
            return  # the run has a checkpoint: it can be resumed, its directory stays
        if self.owned:
            for name in (CONFIG_FILE, HISTORY_FILE, f"{CHECKPOINTS}/best.safetensors"):
                (self.path / name).unlink(missing_ok=True)
        for directory in (ckpts, self.path) if self.made else (ckpts,):
            try:
                directory.rmdir()
            except OSError:  # absent, or holds files this run did not write: left as it is
                pass


# --- resume ---------------------------------------------------------------------------------


@dataclass
class Resume:
    """A checkpoint to continue: its file, the epochs it has done, the run's settings, and the
    run directory it sits in (``RUN/checkpoints/``; None for a checkpoint moved elsewhere)."""

    path: Path
    done: int
    config: dict[str, Any]
    run_dir: Path | None
    in_place: bool = False  # continued in its own run directory (else in a new --out)
    input_shape: tuple[int, ...] | None = None  # of the model's examples, as its run recorded


def read_resume(path_text: str) -> Resume:
    """``--resume FILE``: a training checkpoint, checked before anything is written."""
    from deltanet.io import load_checkpoint

    path = Path(path_text)
    if not path.is_file():
        raise CliError(f"--resume: no checkpoint file at {path_text!r}.")
    try:  # a corrupt file fails here
        ckpt = load_checkpoint(path)
    except ValueError as err:
        raise CliError(f"--resume: {err}") from None
    done = ckpt.metadata.get("epoch")
    if ckpt.optimizer_state is None or not _is_count(done):
        raise CliError(
            f"--resume: {path_text!r} is a model file, not a training checkpoint (it holds no "
            "epoch and optimizer state): give RUN/checkpoints/last.safetensors."
        )
    run_dir = path.parent.parent if path.parent.name == CHECKPOINTS else None
    run = ckpt.metadata.get("run")
    shape = run.get("input_shape") if isinstance(run, dict) else None
    config = _saved_config(ckpt.metadata, run_dir)
    return Resume(path, done, config, run_dir, input_shape=None if shape is None else tuple(shape))


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _saved_config(meta: dict[str, Any], run_dir: Path | None) -> dict[str, Any]:
    """The run's settings: the checkpoint's own, else (older checkpoints) its run's config.json,
    else the few that its run description holds."""
    found = meta.get("run")
    run: dict[str, Any] = found if isinstance(found, dict) else {}
    if isinstance(run.get("config"), dict):
        return dict(run["config"])
    if run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        return read_json(run_dir / CONFIG_FILE)
    keys = ("model", "data", "data_dir", "seed")
    return {k: run[k] for k in keys if run.get(k) is not None}


def resume_settings(resume: Resume, given: dict[str, Any]) -> dict[str, Any]:
    """The run's settings updated with ``given``; a flag other than --epochs (and --data-dir)
    with another value than the run's is refused, naming it."""
    for key, value in given.items():
        if key in RESUME_MAY_CHANGE or key not in resume.config:
            continue
        saved = resume.config[key]
        if not _same_setting(key, value, saved):
            flag = "--" + key.replace("_", "-")
            raise CliError(
                f"{flag} {_show(value)} differs from the resumed run's {_show(saved)} "
                f"({resume.path}). A resumed run keeps the settings it started with (its model, "
                f"data split, shuffling and optimizer state depend on them); only --epochs may "
                f"change. Drop {flag}, or start a new run without --resume."
            )
    return {**resume.config, **given}


def _same_setting(key: str, value: Any, saved: Any) -> bool:
    if (
        key == "data"
        and isinstance(value, str)
        and (value.lower().endswith(".npz") or os.path.isdir(os.path.expanduser(value)))
    ):  # saved resolved (cli.train._load_data)
        value = str(Path(value).expanduser().resolve())
    if key == "stepvalues" and value is not None and saved is not None:
        return list(value) == list(saved)
    return bool(value == saved)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def check_epochs_left(resume: Resume, epochs: int, given: bool) -> None:
    """--epochs is the run's total: it must exceed the epochs the checkpoint has done."""
    if epochs > resume.done:
        return
    if given:
        what = f"--epochs {epochs} is not more than the {resume.done} epochs {resume.path} has done"
    else:
        what = f"--resume: {resume.path} has done all {resume.done} epochs of its run"
    raise CliError(
        f"{what}; --epochs is the run's total: pass --epochs N with N > {resume.done} to train "
        "more (nothing was written)."
    )


def resume_out(resume: Resume, out_arg: str | None) -> Path:
    """Where the resumed run goes: ``--out``, else the checkpoint's own run directory."""
    if out_arg is None:
        if resume.run_dir is None:
            raise CliError(
                f"--resume: {str(resume.path)!r} is not in a run directory's checkpoints/ "
                "folder: give --out DIR, a new or empty directory, for the continued run."
            )
        resume.in_place = True
        return resume.run_dir
    out = Path(out_arg)
    resume.in_place = resume.run_dir is not None and same_path(out, resume.run_dir)
    return out


def check_resume_out(resume: Resume, out: Path) -> None:
    """The resumed run's directory: its own (never going back behind its latest checkpoint) or
    a new or empty one (never another run)."""
    if not resume.in_place:
        if out.is_dir() and any(out.iterdir()):
            own = f"its own run directory ({resume.run_dir}) or " if resume.run_dir else ""
            raise CliError(
                f"--out {str(out)!r} is not empty: --resume continues a run in {own}a new or "
                "empty --out, never in another run."
            )
        check_out_dir(out)
        return
    assert resume.run_dir is not None  # in_place
    last = resume.run_dir / CHECKPOINTS / "last.safetensors"
    later = _epoch_of(last) if last.is_file() and not same_path(last, resume.path) else None
    if later is not None and later > resume.done:
        raise CliError(
            f"--resume {resume.path} holds epoch {resume.done}, but its run went on to epoch "
            f"{later} ({last}): continuing here would discard epochs {resume.done + 1}-{later}. "
            f"Resume from {last}, or continue epoch {resume.done} in a new run with --out DIR."
        )


def carry_best(resume: Resume, out: Path) -> None:
    """A resumed run in a new directory starts with its run's best checkpoint so far, when the
    original run still holds it (its best is no later than the epoch resumed from)."""
    if resume.run_dir is None or resume.in_place:
        return
    best = resume.run_dir / CHECKPOINTS / "best.safetensors"
    epoch = _epoch_of(best) if best.is_file() else None
    if epoch is not None and epoch <= resume.done:
        from deltanet.io.safetensors import atomic_write

        data = best.read_bytes()
        (out / CHECKPOINTS).mkdir(exist_ok=True)
        atomic_write(out / CHECKPOINTS / "best.safetensors", lambda f: f.write(data))


def _epoch_of(path: Path) -> int | None:
    from deltanet.io import load_checkpoint

    try:
        epoch = load_checkpoint(path).metadata.get("epoch")
    except ValueError:  # unreadable: the checkpoint given is the run's latest usable state
        return None
    return epoch if _is_count(epoch) else None
