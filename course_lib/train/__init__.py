"""Training and evaluation: ``fit`` and ``evaluate`` (notebook ``02_vgg16_baseline``; speed in ``10``).

``fit(model, train_loader, val_loader, config)`` is one loop for every model of the course;
``config`` is a :class:`~course_lib.runspec.TrainConfig`, the typed description of how to
train (epochs, optimiser, loss, precision, seed, device). The loop reads top to bottom:
set up (device, optimiser, :func:`restore_run` from ``last.pt``), then per epoch
:func:`train_one_epoch`, :func:`evaluate`, :func:`save_epoch`. :func:`train_run` trains a
whole :class:`~course_lib.runspec.RunSpec` into the folder its fingerprint names.

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
- The device is the config's: the loaders must deliver their batches there (``fit`` checks
  before the first step), so no batch is copied twice.
- ``amp``, ``channels_last`` and ``compile`` are the speed switches (notebook 10); under
  ``torchrun`` the same call trains with DistributedDataParallel (:mod:`course_lib.distributed`).

The command line (``python -m course_lib.train``, through this package's ``__main__``) lives
in :mod:`course_lib.cli`.
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

from ..checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_atomic,
    write_text_atomic,
)
from ..config import seed_everything
from ..distributed import (
    ShardSampler,
    all_reduce,
    barrier,
    gather_predictions,
    init_from_environment,
    shard_loader,
    unwrap,
)
from ..faults import reached
from ..metrics import classification_metrics
from ..models import logits_of
from ..runs import (
    RunFolderError,
    check_resumable,
    check_same_run,
    model_signature,
    prepare_run_folder,
    run_folder_lock,
    write_manifest,
)
from ..runspec import RUNS, DataSpec, ModelSpec, RunSpec, TrainConfig, same_device

__all__ = [
    "fit",
    "train_run",
    "evaluate",
    "logits_of",
    "train_one_epoch",
    "restore_run",
    "save_epoch",
    "TrainingState",
]


def _loss(loss_fn, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` on the logits; without one, BCE-with-logits (one logit) or cross-entropy."""
    if logits.shape[-1] == 1:  # binary: one logit per image, float targets
        loss_fn = loss_fn or nn.functional.binary_cross_entropy_with_logits
        return loss_fn(logits.squeeze(-1).float(), targets.float())
    return (loss_fn or nn.functional.cross_entropy)(logits.float(), targets.long())


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
        check_resumable(out, manifest)  # files of another run, or of nobody's: refused
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
    config: TrainConfig,
    context,
    *,
    epoch: int = 1,
    progress: bool = True,
):
    """One pass over ``loader``; returns ``(mean loss, mean aux loss or None, steps)``.

    Raises ``FloatingPointError`` naming the epoch and the first step whose loss was not finite.
    """
    device, aux_loss = config.device, config.aux_loss
    net.train()
    running = torch.zeros((), device=device)
    running_aux = torch.zeros((), device=device)
    seen, steps = 0, 0
    bad_step = torch.full((), -1, device=device, dtype=torch.long)
    # a bar fed by hand: tqdm.auto would call iter() on the loader a second time per epoch.
    # `disable` is passed only to switch the bar off, so TQDM_DISABLE=1 (the book build) also can
    bar = tqdm(
        total=len(loader),
        desc=f"epoch {epoch}/{config.epochs}",
        leave=False,
        **({} if progress else {"disable": True}),
    )
    for steps, batch in enumerate(loader, start=1):
        x, y = _inputs(batch, device, config.channels_last)
        with context:
            output = net(x)
        loss = _loss(config.loss, logits_of(output), y)
        if aux_loss is not None:
            extras = (item.to(device, non_blocking=True) for item in batch[2:])
            extra = aux_loss(output, *extras).float()
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
    _check_epoch(loader, steps, bad_step, epoch)
    seen = int(all_reduce(torch.tensor(seen, device=device)))
    aux = float(all_reduce(running_aux)) / seen if aux_loss is not None else None
    return float(all_reduce(running)) / seen, aux, steps


def _check_epoch(loader, steps: int, bad_step: torch.Tensor, epoch: int) -> None:
    """Raise when no batch came, or when any process saw a non-finite loss (every process
    must raise, or the others would wait)."""
    if all_reduce(torch.tensor(steps, device=bad_step.device), op="max") == 0:
        raise ValueError(
            f"the training loader yielded no batches ({len(loader.dataset)} images; with "
            "drop_last, a batch size larger than the data set leaves none)"
        )
    never = torch.iinfo(torch.long).max
    first_bad = int(all_reduce(torch.where(bad_step < 0, never, bad_step), op="min"))
    if first_bad != never:
        raise FloatingPointError(
            f"the training loss became non-finite at epoch {epoch}, step {first_bad} "
            "(try a lower learning rate, or turn mixed precision off)"
        )


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


def _record_epoch(
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


def _batches(loader) -> int | None:
    """How many batches ``loader`` yields, or None when it cannot say (an iterable data set)."""
    try:
        return len(loader)
    except TypeError:
        return None


def _check_loaders(config: TrainConfig, train_loader, val_loader) -> None:
    """The loaders deliver on the config's device (checked, never silently re-copied), and
    the validation set is not empty (known before a whole epoch is trained) and has both
    classes."""
    if _batches(val_loader) == 0:
        raise ValueError(
            "the validation loader yields no batches (an empty validation set, or drop_last "
            "with fewer images than a batch): there is nothing to score the run on"
        )
    for name, loader in (("training", train_loader), ("validation", val_loader)):
        there = getattr(loader, "device", None)
        if there is not None and not same_device(there, config.device):
            raise ValueError(
                f"the {name} loader delivers its batches on {there} but the run trains on "
                f"{config.device}: build the loaders with the config's device "
                "(make_loaders(..., device=config.device))"
            )
    _one_class_check(val_loader)


def _manifest(model: nn.Module, epochs: int, run_info: dict | None, processes) -> dict:
    """What makes the run what it is; stored in ``run.json`` and checked before resuming."""
    return {
        "model": model_signature(model),
        "epochs": epochs,
        "processes": processes,
        "run_info": dict(run_info or {}),
    }


def _start_epoch(epoch: int, seed: int, loaders) -> None:
    """Make every random choice of the epoch a function of ``(seed, epoch)``."""
    _reseed(seed, epoch)
    for loader in loaders:
        # DeviceLoader: order and augmentation from (seed, epoch)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch, seed)


def _validate(net, loader, config: TrainConfig, epoch: int, steps: int) -> dict:
    """:func:`evaluate` after an epoch; a non-finite output names the epoch and its last step."""
    try:
        return evaluate(
            net,
            loader,
            device=config.device,
            loss_fn=config.loss,
            amp=config.amp,
            channels_last=config.channels_last,
        )
    except FloatingPointError as err:
        raise FloatingPointError(
            f"epoch {epoch}, after its last training step (step {steps - 1}): {err}; "
            "nothing of this epoch was saved"
        ) from None


def fit(
    model: nn.Module,
    train_loader,
    val_loader,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    run_info: dict | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> pd.DataFrame:
    """Train ``model`` as ``config`` says; return the history (one row per epoch).

    With ``out_dir``: checkpoints, ``metrics.csv`` and ``run.json`` go there, under the
    folder's lock (one writer); ``resume`` continues the run it holds (``run_info``, the
    run's description, must match), ``overwrite`` replaces it. The loaders must deliver on
    ``config.device``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(
            "fit(model, train_loader, val_loader, config): config is a TrainConfig, "
            f"e.g. TrainConfig(epochs=8), not {type(config).__name__}"
        )
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, where the checkpoints are")
    device, epochs = config.device, config.epochs
    current = init_from_environment()  # under torchrun: join the other processes
    _check_loaders(config, train_loader, val_loader)
    out = Path(out_dir) if out_dir is not None else None
    writes = out is not None and current.is_main
    verbose, progress = verbose and current.is_main, progress and current.is_main
    with run_folder_lock(out) if writes else contextlib.nullcontext():
        if writes:  # under the lock, before anything is written
            prepare_run_folder(out, resume=resume, overwrite=overwrite)
        # the model on its device, its optimiser and schedule, how a step computes
        core = unwrap(model).to(device)
        if config.channels_last:
            core.to(memory_format=torch.channels_last)
        optimizer, scheduler = config.optimizer.build(core.parameters(), epochs)
        context, amp_dtype = _autocast(device, config.amp)
        scaler = (
            torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        )
        state = TrainingState(core, optimizer, scheduler, scaler)
        manifest = _manifest(core, epochs, run_info, current.size)
        if resume:  # continue from last.pt, if the folder holds this run
            restore_run(state, out, manifest, device, verbose)

        net, eval_net = _wrapped(core, current, device, config.compile)
        # under torchrun each process reads its shard (training padded to equal lengths)
        train_loader = shard_loader(train_loader, current, pad=True)
        val_loader = shard_loader(val_loader, current, pad=False)
        for epoch in range(state.epoch + 1, epochs + 1):
            started = time.perf_counter()
            _start_epoch(epoch, config.seed, (train_loader, val_loader))
            train_loss, aux, steps = train_one_epoch(
                net,
                train_loader,
                state,
                config,
                context,
                epoch=epoch,
                progress=progress,
            )
            _check_finite_weights(core, epoch, steps)
            if scheduler is not None:
                scheduler.step()
            val = _validate(eval_net, val_loader, config, epoch, steps)
            improved = _record_epoch(state, epoch, train_loss, aux, val, started)
            if verbose:
                _log_epoch(state.history[-1], epochs, improved)
            if writes:
                save_epoch(out, state, manifest, improved)
            barrier()  # no process runs ahead of the checkpoint
    return pd.DataFrame(state.history)


def train_run(
    model: ModelSpec,
    train_loader,
    val_loader,
    config: TrainConfig,
    *,
    tag: str,
    root: str | Path = RUNS,
    progress: bool = False,
    verbose: bool = True,
):
    """Train the run ``(model, the loaders' data, config)`` into its own folder, or reload it.

    The folder is :meth:`RunSpec.run_dir(tag, root) <course_lib.runspec.RunSpec.run_dir>`,
    named by the fingerprint of every setting; a finished run there is reloaded, an
    interrupted one resumed. Returns ``(model, history)``: the model after its last epoch,
    in eval mode, on ``config.device``; ``history.attrs`` holds ``run_dir`` (the folder)
    and ``fingerprint``.
    """
    spec = RunSpec(model, DataSpec.of(train_loader, val_loader), config)
    out = spec.run_dir(tag, root)
    seed_everything(config.seed)  # the initial weights are part of the run
    network = model.build()
    history = fit(
        network,
        train_loader,
        val_loader,
        config,
        out_dir=out,
        resume=True,
        run_info=spec.describe(),
        progress=progress,
        verbose=verbose,
    )
    history.attrs.update(run_dir=str(out), fingerprint=spec.fingerprint())
    return network.eval(), history
