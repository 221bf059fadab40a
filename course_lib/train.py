"""Training and evaluation: ``fit`` and ``evaluate`` (notebook ``02_vgg16_baseline``; speed in ``10``).

``fit`` is one loop for every model of the course, in named steps a reader can follow:
:func:`restore_run` (continue from ``last.pt``), :func:`train_one_epoch`, :func:`evaluate`,
:func:`save_epoch`.

- The model may return logits, or a tuple whose first item is the logits (AttnVGG also
  returns its attention maps). One output means a binary task (``BCEWithLogitsLoss`` on the
  raw logit — no sigmoid before the loss), more outputs a multi-class one (``CrossEntropyLoss``).
- Metrics are computed over the *whole* validation set after each epoch, from probabilities
  gathered batch by batch (the Paperspace tutorial scored only the last batch).
- After every epoch ``last.pt`` is written atomically, ``best.pt`` when the validation AUC
  improves, ``metrics.csv`` holds one row per epoch and ``run.json`` says which run the
  folder holds (:mod:`course_lib.runs`). A folder that holds a run is never overwritten
  unless asked (``overwrite=True``); ``resume=True`` continues it, and only with the same
  model and settings.
- Every epoch's random choices are a function of ``(seed, epoch)``: the global generators are
  re-seeded at each epoch, and the course's loaders (:class:`~course_lib.data.DeviceLoader`)
  draw their order and augmentation from it. A resumed run therefore reproduces an
  uninterrupted one exactly on the CPU, whatever the number of loader workers.
- The step loop never waits for the device except to log: the loss is summed and checked
  for NaN/inf *on* the device; after the epoch the weights and the validation outputs are
  checked too, so a model that became non-finite is never saved as ``best.pt``.
- ``amp``, ``channels_last`` and ``compile`` are the speed switches (notebook 10); under
  ``torchrun`` the same call trains with DistributedDataParallel (:mod:`course_lib.distributed`).

The command line (``python -m course_lib.train``) lives in :mod:`course_lib.cli`.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

# "IProgress not found": without ipywidgets, tqdm.auto falls back to text bars
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, save_atomic, write_text_atomic
from .config import get_device
from .distributed import (
    ShardSampler,
    all_reduce,
    barrier,
    gather_predictions,
    init_from_environment,
    shard_loader,
    unwrap,
)
from .faults import reached
from .metrics import classification_metrics
from .runs import (
    RunFolderError,
    check_same_run,
    model_signature,
    prepare_run_folder,
    write_manifest,
)

__all__ = [
    "fit",
    "evaluate",
    "logits_of",
    "train_one_epoch",
    "restore_run",
    "save_epoch",
    "TrainingState",
]


def logits_of(output) -> torch.Tensor:
    """The logits of a model's output: the output itself, or the first item of a tuple."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _default_loss(logits: torch.Tensor) -> nn.Module:
    return nn.BCEWithLogitsLoss() if logits.shape[-1] == 1 else nn.CrossEntropyLoss()


def _loss(loss_fn, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if logits.shape[-1] == 1:  # binary: one logit per image, float targets
        return loss_fn(logits.squeeze(-1).float(), targets.float())
    return loss_fn(logits.float(), targets.long())


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    return (
        torch.sigmoid(logits.squeeze(-1))
        if logits.shape[-1] == 1
        else torch.softmax(logits, dim=-1)
    )


def _autocast(device: torch.device, amp: bool | str):
    """Mixed precision: bf16 where supported (CPU, recent GPUs), else fp16; ``amp="fp16"`` or
    ``"bf16"`` forces one (``"fp16"`` is what a GPU without bf16, such as Colab's T4, runs)."""
    if not amp:
        return contextlib.nullcontext(), None
    if amp in ("fp16", "bf16"):
        dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    elif amp is not True:
        raise ValueError(f"amp must be True, False, 'bf16' or 'fp16', not {amp!r}")
    elif device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16
    return torch.autocast(device.type, dtype=dtype), dtype


def _inputs(batch, device: torch.device, channels_last: bool):
    x, y = (
        batch[0].to(device, non_blocking=True),
        batch[1].to(device, non_blocking=True),
    )
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    device=None,
    loss_fn=None,
    amp: bool | str = False,
    return_predictions: bool = False,
    channels_last: bool = False,
) -> dict:
    """Loss and classification metrics of ``model`` over every batch of ``loader``.

    Returns a dict with ``loss``, ``auc``, ``accuracy``, ``sensitivity``, ``specificity``,
    ``balanced_accuracy`` and ``n``; with ``return_predictions`` also ``scores`` and ``targets``.
    When ``loader`` reads one process's shard (:func:`course_lib.distributed.shard_loader`),
    the predictions of all processes are gathered first, so every process gets the metrics
    of the whole set. Raises ``FloatingPointError`` when the model's outputs are not finite.
    """
    device = (
        torch.device(device) if device is not None else next(model.parameters()).device
    )
    model.eval()
    context, _ = _autocast(device, amp)
    total_loss, scores, targets = torch.zeros((), device=device), [], []
    for batch in loader:
        x, y = _inputs(batch, device, channels_last)
        with context:
            logits = logits_of(model(x))
        loss_fn = loss_fn or _default_loss(logits)
        total_loss += _loss(loss_fn, logits, y).detach() * len(y)
        scores.append(_probabilities(logits).cpu())
        targets.append(y.cpu())
    scores_np = (
        torch.cat(scores).numpy() if scores else np.zeros((0,), dtype=np.float32)
    )
    targets_np = (
        torch.cat(targets).numpy() if targets else np.zeros((0,), dtype=np.int64)
    )
    if isinstance(getattr(loader, "sampler", None), ShardSampler):
        total_loss = all_reduce(total_loss)
        scores_np, targets_np = gather_predictions(scores_np, targets_np)
    count = len(targets_np)
    if count == 0:
        raise ValueError("the evaluation loader yielded no batches")
    bad = int((~np.isfinite(scores_np)).reshape(count, -1).any(axis=1).sum())
    if bad:
        raise FloatingPointError(
            f"the model's outputs are not finite for {bad} of {count} images"
        )
    result = {
        "loss": float(total_loss) / count,
        **classification_metrics(targets_np, scores_np),
        "n": count,
    }
    if return_predictions:
        result.update(scores=scores_np, targets=targets_np)
    return result


def _reseed(seed: int, epoch: int) -> None:
    s = seed * 10_007 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


@dataclass
class TrainingState:
    """Everything a run needs to continue: what ``last.pt`` holds."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object = None
    scaler: object = None
    history: list = field(default_factory=list)
    best_auc: float = -math.inf
    epoch: int = 0  # the last completed epoch

    def checkpoint(self, manifest: dict) -> dict:
        optional = {
            name: getattr(self, name).state_dict()
            if getattr(self, name) is not None
            else None
            for name in ("scheduler", "scaler")
        }
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **optional,
            "epoch": self.epoch,
            "history": self.history,
            "best_auc": self.best_auc,
            "manifest": manifest,
        }


def restore_run(
    state: TrainingState, out: Path, manifest: dict, device, verbose: bool = True
) -> TrainingState:
    """Load ``out/last.pt`` into ``state`` after checking it belongs to this run; a no-op without it."""
    last = out / "last.pt"
    if not last.is_file():
        if verbose:
            print(f"no checkpoint in {out}: starting from scratch")
        return state
    try:
        saved = load_checkpoint(last, map_location=device)
    except CheckpointError as err:
        raise CheckpointError(
            f"{err}. Its run cannot be resumed: delete {last} to start the run over "
            f"(best.pt, if there, keeps the best weights), or train into a new folder"
        ) from None
    check_same_run(saved.get("manifest") or {}, manifest, out)
    try:
        state.model.load_state_dict(saved["model"])
        state.optimizer.load_state_dict(saved["optimizer"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise RunFolderError(
            f"{last} does not fit this model or optimiser ({str(err).splitlines()[0]}): "
            "resume with the model it was trained with, or train into a new folder"
        ) from None
    for name in ("scheduler", "scaler"):
        if getattr(state, name) is not None and saved.get(name) is not None:
            getattr(state, name).load_state_dict(saved[name])
    state.history, state.best_auc, state.epoch = (
        list(saved["history"]),
        saved["best_auc"],
        saved["epoch"],
    )
    if verbose and state.epoch >= manifest["epochs"]:
        print(f"reloaded the finished run in {out}: {state.epoch} epochs, none left")
    elif verbose:
        print(
            f"resuming from {last}: epoch {state.epoch} done, continuing at epoch {state.epoch + 1}"
        )
    return state


def train_one_epoch(
    net,
    loader,
    state: TrainingState,
    loss_fn,
    *,
    aux_loss=None,
    context,
    device,
    channels_last: bool = False,
    epoch: int = 1,
    label: str = "",
    progress: bool = True,
):
    """One pass over ``loader``; returns ``(mean loss, mean aux loss or None, loss_fn, steps)``.

    Raises ``FloatingPointError`` naming the epoch and the first step whose loss was not finite.
    """
    net.train()
    running, running_aux, seen = (
        torch.zeros((), device=device),
        torch.zeros((), device=device),
        0,
    )
    bad_step = torch.full((), -1, device=device, dtype=torch.long)
    # a bar fed by hand: tqdm.auto would call iter() on the loader a second time per epoch.
    # `disable` is passed only to switch the bar off, so TQDM_DISABLE=1 (the book build) also can
    bar = tqdm(
        total=len(loader),
        desc=label,
        leave=False,
        **({} if progress else {"disable": True}),
    )
    steps = 0
    for steps, batch in enumerate(loader, start=1):
        x, y = _inputs(batch, device, channels_last)
        with context:
            output = net(x)
        logits = logits_of(output)
        loss_fn = loss_fn or _default_loss(logits)
        loss = _loss(loss_fn, logits, y)
        if aux_loss is not None:
            extra = aux_loss(
                output, *(item.to(device, non_blocking=True) for item in batch[2:])
            ).float()
            running_aux += extra.detach() * len(y)
            loss = loss + extra
        _backward_and_step(state, loss)
        # bookkeeping stays on the device: no host-device synchronisation per step
        detached = loss.detach()
        bad_step = torch.where(
            (bad_step < 0) & ~torch.isfinite(detached), steps - 1, bad_step
        )
        running += detached * len(y)
        seen += len(y)
        bar.update(1)
        reached(f"epoch {epoch} step {steps}")  # fault injection, for the tests only
        if progress and steps % 10 == 1:  # logging is the one place that synchronises
            bar.set_postfix(loss=f"{float(running) / seen:.4f}")
    bar.close()
    if all_reduce(torch.tensor(steps, device=device), op="max") == 0:
        raise ValueError(
            f"the training loader yielded no batches ({len(loader.dataset)} images; with "
            "drop_last, a batch size larger than the data set leaves none)"
        )
    # the first bad step of any process (every process must raise, or the others would wait)
    never = torch.iinfo(torch.long).max
    first_bad = int(all_reduce(torch.where(bad_step < 0, never, bad_step), op="min"))
    if first_bad != never:
        raise FloatingPointError(
            f"the training loss became non-finite at epoch {epoch}, step {first_bad} "
            "(try a lower learning rate, or turn mixed precision off)"
        )
    seen = int(all_reduce(torch.tensor(seen, device=device)))
    aux = float(all_reduce(running_aux)) / seen if aux_loss is not None else None
    return float(all_reduce(running)) / seen, aux, loss_fn, steps


def _backward_and_step(state: TrainingState, loss: torch.Tensor) -> None:
    """Gradients of ``loss`` and one optimiser step (through the fp16 gradient scaler if any)."""
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        loss.backward()
        state.optimizer.step()


def _check_finite_weights(model: nn.Module, epoch: int, steps: int) -> None:
    tensors = [
        t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()
    ]
    if tensors and not bool(
        torch.stack([torch.isfinite(t).all() for t in tensors]).all()
    ):
        raise FloatingPointError(
            f"the weights became non-finite at epoch {epoch}, in its last update (step {steps - 1}): every "
            "training loss was finite, so the last step overflowed (try a lower learning rate, or turn "
            "mixed precision off). Nothing of this epoch was saved"
        )


def save_epoch(out: Path, state: TrainingState, manifest: dict, improved: bool) -> None:
    """Write ``best.pt`` (when ``improved``), ``last.pt``, ``metrics.csv`` and ``run.json`` of the epoch just done."""
    write_manifest(out, manifest)
    if improved:
        save_atomic(
            {
                "model": state.model.state_dict(),
                "epoch": state.epoch,
                "val_auc": state.best_auc,
                "manifest": manifest,
            },
            out / "best.pt",
        )
    save_atomic(
        state.checkpoint(manifest),
        out / "last.pt",
        kill_point=f"epoch {state.epoch} writing last.pt",
    )
    reached(f"epoch {state.epoch} before metrics.csv")
    write_text_atomic(
        pd.DataFrame(state.history).to_csv(index=False), out / "metrics.csv"
    )


def _one_class_check(loader) -> None:
    targets = getattr(getattr(loader, "dataset", None), "targets", None)
    if (
        isinstance(targets, torch.Tensor)
        and targets.numel()
        and targets.unique().numel() < 2
    ):
        raise ValueError(
            f"the validation set holds one class only ({targets.numel()} images of class "
            f"{targets[0].item():g}): its AUC is undefined; split so that both classes are in it"
        )


def _log_epoch(row: dict, epochs: int, improved: bool) -> None:
    print(
        f"epoch {row['epoch']:3d}/{epochs}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
        f"val_auc {row['val_auc']:.4f}  val_bal_acc {row['val_balanced_accuracy']:.3f}  "
        f"({row['seconds']:.1f} s){'  *best' if improved else ''}"
    )


def _training_state(model, device, optim, epochs, amp, channels_last):
    """The model on its device, the optimiser (AdamW + cosine by default), and how a step
    runs (device, mixed-precision context, ``amp``, ``channels_last``)."""
    optimizer, scheduler, lr, weight_decay = optim
    core = unwrap(model).to(device)
    if channels_last:
        core.to(memory_format=torch.channels_last)
    if optimizer is None:
        optimizer = torch.optim.AdamW(
            core.parameters(), lr=lr, weight_decay=weight_decay
        )
        scheduler = scheduler or torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs
        )
    context, amp_dtype = _autocast(device, amp)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    step = {
        "device": device,
        "context": context,
        "amp": amp,
        "channels_last": channels_last,
    }
    return TrainingState(core, optimizer, scheduler, scaler), step


def _sharded(train_loader, val_loader, current):
    """The loaders of this process: under ``torchrun``, its shard of each (training padded)."""
    return (
        shard_loader(train_loader, current, pad=True),
        shard_loader(val_loader, current, False),
    )


def _wrapped(core, current, device, compile: bool):
    """The network to train (DDP and/or compiled) and the one to validate with.

    Wrappers go on after a checkpoint is loaded, so checkpoints hold the plain model's keys.
    DDP synchronises inside forward and validation shards may differ by a batch, so under
    ``torchrun`` validation uses the model without DDP.
    """
    net = core
    if current.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            core, device_ids=[device.index] if device.type == "cuda" else None
        )
    net = torch.compile(net) if compile else net
    return net, (
        (torch.compile(core) if compile else core) if current.distributed else net
    )


def _finish_epoch(
    state: TrainingState, epoch: int, train_loss: float, aux, val: dict, started: float
) -> bool:
    """Append the epoch's row to the history; return whether its validation AUC is the best yet."""
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val["loss"],
        **({"train_aux_loss": aux} if aux is not None else {}),
        **{f"val_{k}": v for k, v in val.items() if k not in ("loss", "n")},
        "lr": state.optimizer.param_groups[0]["lr"],
        "seconds": time.perf_counter() - started,
    }
    improved = not math.isnan(row["val_auc"]) and row["val_auc"] > state.best_auc
    state.history.append(row)
    state.epoch, state.best_auc = epoch, row["val_auc"] if improved else state.best_auc
    return improved


def _start_run(epochs, device, out_dir, resume, overwrite, val_loader):
    """Check the arguments, pick the device (one GPU per process under ``torchrun``), and
    prepare the run folder (refusing one that holds another run). Returns
    ``(process, device, out)``."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1 (got {epochs})")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, where the checkpoints are")
    current = init_from_environment()
    if device is None and current.distributed and torch.cuda.is_available():
        device = torch.device("cuda", current.local_rank)
    device = torch.device(device) if device is not None else get_device()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and current.is_main:
        prepare_run_folder(out, resume=resume, overwrite=overwrite)
    _one_class_check(val_loader)
    return current, device, out


def _manifest(model: nn.Module, epochs: int, run_info: dict | None) -> dict:
    """What makes the run what it is; stored in ``run.json`` and checked before resuming."""
    return {
        "model": model_signature(model),
        "epochs": epochs,
        "run_info": dict(run_info or {}),
    }


def _start_epoch(epoch: int, seed: int, loaders) -> None:
    """Make every random choice of the epoch a function of ``(seed, epoch)``."""
    _reseed(seed, epoch)
    for loader in loaders:
        # DeviceLoader: order and augmentation from (seed, epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch, seed)


def train_and_validate(state, nets, loaders, loss_fn, epoch: int, epochs: int, step):
    """One epoch of ``fit``: train, check the weights, step the schedule, validate, record.

    ``nets`` and ``loaders`` are the (training, validation) pairs; ``step`` says how a step
    runs (device, autocast context, ``amp``, ``channels_last``, ``aux_loss``, ``progress``).
    Returns ``(improved, loss_fn)``: whether the validation AUC is the best yet, and the loss
    (chosen from the first logits when ``fit`` was given none).
    """
    (net, eval_net), (train_loader, val_loader) = nets, loaders
    started = time.perf_counter()
    options = {k: step[k] for k in ("aux_loss", "context", "device", "channels_last")}
    train_loss, aux, loss_fn, steps = train_one_epoch(
        net,
        train_loader,
        state,
        loss_fn,
        **options,
        epoch=epoch,
        label=f"epoch {epoch}/{epochs}",
        progress=step["progress"],
    )
    _check_finite_weights(state.model, epoch, steps)
    if state.scheduler is not None:
        state.scheduler.step()
    try:
        val = evaluate(
            eval_net,
            val_loader,
            device=step["device"],
            loss_fn=loss_fn,
            amp=step["amp"],
            channels_last=step["channels_last"],
        )
    except FloatingPointError as err:
        raise FloatingPointError(
            f"epoch {epoch}, after its last training step (step {steps - 1}): {err}; "
            "nothing of this epoch was saved"
        ) from None
    return _finish_epoch(state, epoch, train_loss, aux, val, started), loss_fn


def fit(
    model: nn.Module,
    train_loader,
    val_loader,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    loss_fn: nn.Module | None = None,
    aux_loss=None,
    device=None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    amp: bool | str = False,
    channels_last: bool = False,
    compile: bool = False,
    seed: int = 0,
    run_info: dict | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> pd.DataFrame:
    """Train ``model`` for ``epochs`` epochs; return the history (one row per epoch).

    Without ``optimizer``: AdamW(``lr``, ``weight_decay``), cosine schedule over ``epochs``. With
    ``out_dir``: checkpoints, ``metrics.csv`` and ``run.json`` go there; ``resume`` continues the
    run it holds (``run_info``, a dict of settings, must match), ``overwrite`` replaces it.
    ``amp``: mixed precision (True, "bf16" or "fp16"); ``channels_last``, ``compile``: speed.
    ``aux_loss(output, *extras)`` adds a loss on the whole output and the batch's extra items
    (e.g. lesion masks); validation scores the classification loss only.
    """
    current, device, out = _start_run(
        epochs, device, out_dir, resume, overwrite, val_loader
    )
    verbose = verbose and current.is_main
    optim = (optimizer, scheduler, lr, weight_decay)
    state, step = _training_state(model, device, optim, epochs, amp, channels_last)
    step.update(aux_loss=aux_loss, progress=progress and current.is_main)
    manifest = _manifest(state.model, epochs, run_info)
    if resume:
        restore_run(state, out, manifest, device, verbose)
    nets = _wrapped(state.model, current, device, compile)
    loaders = _sharded(train_loader, val_loader, current)
    for epoch in range(state.epoch + 1, epochs + 1):
        _start_epoch(epoch, seed, loaders)
        improved, loss_fn = train_and_validate(
            state, nets, loaders, loss_fn, epoch, epochs, step
        )
        if verbose:
            _log_epoch(state.history[-1], epochs, improved)
        if out is not None and current.is_main:
            save_epoch(out, state, manifest, improved)
        barrier()  # no process runs ahead of the checkpoint
    return pd.DataFrame(state.history)


# `python -m course_lib.train ...`: the command line of course_lib.cli
if __name__ == "__main__":
    from .cli import main

    raise SystemExit(main())
