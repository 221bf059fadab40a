"""Training and evaluation: ``fit`` / ``evaluate`` and a command line (notebook ``02_vgg16_baseline``).

``fit`` is one loop for every model of the course:

- the model may return logits, or a tuple whose first item is the logits (AttnVGG also
  returns its attention maps);
- one output means a binary task (``BCEWithLogitsLoss`` on the raw logit — no sigmoid
  before the loss), more outputs a multi-class one (``CrossEntropyLoss``);
- metrics are computed over the *whole* validation set after each epoch, on the CPU,
  from probabilities gathered batch by batch (seed 000 scored only the last batch);
- after every epoch ``last.pt`` is written atomically, and ``best.pt`` when the validation
  AUC improves; ``metrics.csv`` holds one row per epoch;
- ``resume=True`` continues from ``last.pt``. Every epoch re-seeds the random generators
  from ``(seed, epoch)``, so a resumed run draws the same shuffles, augmentations and
  dropout masks as an uninterrupted one and, on the CPU, reproduces its numbers exactly;
- the step loop never waits for the device except to log (the loss is summed and checked
  for NaN/inf *on* the device); ``amp``, ``channels_last`` and ``compile`` are the GPU
  speed switches (notebook ``10_attnvgg_melanoma``);
- under ``torchrun`` the same call trains with DistributedDataParallel
  (:mod:`course_lib.distributed`): each process reads its shard, validation predictions are
  gathered from all processes, and process 0 alone prints and writes checkpoints.

Command line::

    python -m course_lib.train --data-root DIR --model vgg16 --epochs N --image-size S --out DIR
                               [--resume] [--profile P] [--val-fraction F] [--seed S]
                               [--amp] [--channels-last] [--compile]
    torchrun --nproc_per_node 2 -m course_lib.train ...   # the same, on two processes
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
with warnings.catch_warnings():  # "IProgress not found": without ipywidgets, tqdm.auto falls back to text bars
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_atomic, write_text_atomic
from .distributed import (ShardSampler, all_reduce, barrier, gather_predictions, init_from_environment,
                          shard_loader, shutdown, unwrap)
from .metrics import classification_metrics

__all__ = ["fit", "evaluate", "logits_of", "main"]


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
    return torch.sigmoid(logits.squeeze(-1)) if logits.shape[-1] == 1 else torch.softmax(logits, dim=-1)


def _autocast(device: torch.device, amp: bool):
    """Mixed precision: bf16 where supported (CPU, recent GPUs), else fp16."""
    if not amp:
        return contextlib.nullcontext(), None
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16
    return torch.autocast(device.type, dtype=dtype), dtype


def _inputs(batch, device: torch.device, channels_last: bool):
    x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


@torch.no_grad()
def evaluate(model: nn.Module, loader, device=None, loss_fn=None, amp: bool = False,
             return_predictions: bool = False, channels_last: bool = False) -> dict:
    """Loss and classification metrics of ``model`` over every batch of ``loader``.

    Returns a dict with ``loss``, ``auc``, ``accuracy``, ``sensitivity``, ``specificity``,
    ``balanced_accuracy`` and ``n``; with ``return_predictions`` also ``scores`` and ``targets``.
    When ``loader`` reads one process's shard (:func:`course_lib.distributed.shard_loader`),
    the predictions of all processes are gathered first, so every process gets the metrics
    of the whole set.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
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
    scores_np = torch.cat(scores).numpy() if scores else np.zeros((0,), dtype=np.float32)
    targets_np = torch.cat(targets).numpy() if targets else np.zeros((0,), dtype=np.int64)
    if isinstance(getattr(loader, "sampler", None), ShardSampler):
        total_loss = all_reduce(total_loss)
        scores_np, targets_np = gather_predictions(scores_np, targets_np)
    count = len(targets_np)
    if count == 0:
        raise ValueError("the evaluation loader yielded no batches")
    result = {"loss": float(total_loss) / count, **classification_metrics(targets_np, scores_np), "n": count}
    if return_predictions:
        result.update(scores=scores_np, targets=targets_np)
    return result


def _reseed(seed: int, epoch: int) -> None:
    s = seed * 10_007 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


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
    amp: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    seed: int = 0,
    progress: bool = True,
    verbose: bool = True,
) -> pd.DataFrame:
    """Train ``model`` for ``epochs`` epochs; return the history (one row per epoch).

    Without ``optimizer``: AdamW(``lr``, ``weight_decay``) with a cosine learning-rate
    schedule over ``epochs``. With ``out_dir``: checkpoints and ``metrics.csv`` go there, and
    ``resume=True`` continues from ``out_dir/last.pt``. ``amp`` turns on mixed precision
    (bf16, or fp16 with a gradient scaler on GPUs without bf16); ``channels_last`` stores
    activations as NHWC, the layout GPU tensor cores prefer; ``compile`` trains a
    ``torch.compile`` d model (slow first steps, faster afterwards). Checkpoints always hold
    the plain model's ``state_dict``. Under ``torchrun``, ``train_loader``'s batch size is
    per process.

    ``aux_loss(output, *extras)`` adds a training loss computed from the model's whole output
    (e.g. AttnVGG's attention maps) and the batch's items after the targets (e.g. lesion
    masks from ``make_loaders(..., with_mask=True)``). ``train_loss`` is then the whole
    objective and ``train_aux_loss`` the added term's epoch mean; validation scores the
    classification loss only.
    """
    from .config import get_device

    current = init_from_environment()
    if device is None and current.distributed and torch.cuda.is_available():
        device = torch.device("cuda", current.local_rank)
    device = torch.device(device) if device is not None else get_device()
    verbose, progress = verbose and current.is_main, progress and current.is_main
    core = unwrap(model).to(device)
    if channels_last:
        core.to(memory_format=torch.channels_last)
    if optimizer is None:
        optimizer = torch.optim.AdamW(core.parameters(), lr=lr, weight_decay=weight_decay)
        if scheduler is None:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    context, amp_dtype = _autocast(device, amp)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    out = Path(out_dir) if out_dir is not None else None
    history: list[dict] = []
    best_auc, start_epoch = -math.inf, 1

    if resume:
        if out is None:
            raise ValueError("resume=True needs out_dir, where the checkpoints are")
        last = out / "last.pt"
        if last.is_file():
            state = load_checkpoint(last, map_location=device)
            core.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            if scaler is not None and state.get("scaler") is not None:
                scaler.load_state_dict(state["scaler"])
            history, best_auc = list(state["history"]), state["best_auc"]
            start_epoch = state["epoch"] + 1
            if verbose:
                print(f"resuming from {last}: epoch {state['epoch']} done, continuing at epoch {start_epoch}")
        elif verbose:
            print(f"no checkpoint in {out}: starting from scratch")

    # wrappers go on after loading, so the checkpoint's keys are the plain model's
    net = core
    if current.distributed:
        net = torch.nn.parallel.DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        net = torch.compile(net)
    # DDP synchronises inside forward, so every process must call it equally often: validation
    # shards may differ by one batch, so they are scored by the model without the DDP wrapper
    eval_net = net if not current.distributed else (torch.compile(core) if compile else core)
    train_loader = shard_loader(train_loader, current, pad=True)
    val_loader = shard_loader(val_loader, current, pad=False)

    for epoch in range(start_epoch, epochs + 1):
        _reseed(seed, epoch)
        net.train()
        started = time.perf_counter()
        running, running_aux, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        bad_step = torch.full((), -1, device=device, dtype=torch.long)
        # a bar fed by hand: tqdm.auto would call iter() on the loader a second time per epoch.
        # `disable` is passed only to switch the bar off, so TQDM_DISABLE=1 (the book build) also can
        bar = tqdm(total=len(train_loader), desc=f"epoch {epoch}/{epochs}", leave=False,
                   **({} if progress else {"disable": True}))
        for step, batch in enumerate(train_loader):
            x, y = _inputs(batch, device, channels_last)
            with context:
                output = net(x)
            logits = logits_of(output)
            loss_fn = loss_fn or _default_loss(logits)
            loss = _loss(loss_fn, logits, y)
            if aux_loss is not None:
                extra = aux_loss(output, *(item.to(device, non_blocking=True) for item in batch[2:])).float()
                running_aux += extra.detach() * len(y)
                loss = loss + extra
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            # bookkeeping stays on the device: no host-device synchronisation per step
            detached = loss.detach()
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(detached), step, bad_step)
            running += detached * len(y)
            seen += len(y)
            bar.update(1)
            if progress and step % 10 == 0:  # logging is the one place that synchronises
                bar.set_postfix(loss=f"{float(running) / seen:.4f}")
        bar.close()
        # the first bad step of any process (every process must raise, or the others would wait)
        never = torch.iinfo(torch.long).max
        first_bad = int(all_reduce(torch.where(bad_step < 0, never, bad_step), op="min"))
        if first_bad != never:
            raise FloatingPointError(f"the training loss became non-finite at epoch {epoch}, step {first_bad} "
                                     "(try a lower learning rate, or turn mixed precision off)")
        running = all_reduce(running)
        seen = int(all_reduce(torch.tensor(seen, device=device)))
        if scheduler is not None:
            scheduler.step()
        val = evaluate(eval_net, val_loader, device=device, loss_fn=loss_fn, amp=amp, channels_last=channels_last)
        row = {"epoch": epoch, "train_loss": float(running) / max(seen, 1), "val_loss": val["loss"]}
        if aux_loss is not None:
            row["train_aux_loss"] = float(all_reduce(running_aux)) / max(seen, 1)
        row.update({f"val_{k}": v for k, v in val.items() if k not in ("loss", "n")})
        row.update(lr=optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - started)
        history.append(row)
        improved = not math.isnan(row["val_auc"]) and row["val_auc"] > best_auc
        if improved:
            best_auc = row["val_auc"]
        if verbose:
            print(f"epoch {epoch:3d}/{epochs}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
                  f"val_auc {row['val_auc']:.4f}  val_bal_acc {row['val_balanced_accuracy']:.3f}  "
                  f"({row['seconds']:.1f} s){'  *best' if improved else ''}")
        if out is not None and current.is_main:
            state = {
                "model": core.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch, "history": history, "best_auc": best_auc,
            }
            if improved:
                save_atomic({"model": state["model"], "epoch": epoch, "val_auc": best_auc}, out / "best.pt")
            save_atomic(state, out / "last.pt")
            write_text_atomic(pd.DataFrame(history).to_csv(index=False), out / "metrics.csv")
        barrier()  # no process runs ahead of the checkpoint
    return pd.DataFrame(history)


# ---------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    from .models import MODEL_NAMES

    p = argparse.ArgumentParser(prog="python -m course_lib.train", description=(
        "Train a course model on a melanoma data set (Kaggle or simple layout), split by patient. "
        "Values not given come from the run profile."))
    p.add_argument("--data-root", required=True, type=Path, help="folder with marking.csv")
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--out", required=True, type=Path, help="folder for checkpoints and metrics.csv")
    p.add_argument("--epochs", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--width", type=float, help="VGG channel multiplier")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--profile", choices=("smoke", "cpu", "gpu"), help="default: COURSE_PROFILE")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--amp", action="store_true", help="mixed precision")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout (faster on GPUs)")
    p.add_argument("--compile", action="store_true", help="train a torch.compile'd model")
    p.add_argument("--make-synthetic", action="store_true",
                   help="generate the profile's synthetic lesions into --data-root when it holds no data set")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    from .config import ProfileError, get_profile, seed_everything
    from .data import DataError, load_melanoma, make_loaders, make_synthetic_lesions, split_by_patient
    from .models import build_model

    args = _parser().parse_args(argv)
    try:
        profile = get_profile(args.profile)
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    epochs = args.epochs or profile.epochs
    size = args.image_size or profile.image_size
    width = args.width or profile.width
    batch_size = args.batch_size or profile.batch_size
    workers = profile.num_workers if args.num_workers is None else args.num_workers
    if size % 32:
        print(f"error: --image-size must be a multiple of 32, got {size}", file=sys.stderr)
        return 2
    current = init_from_environment()  # under torchrun: join the other processes
    try:
        if args.make_synthetic and current.is_main and not (args.data_root / "marking.csv").exists():
            print(f"generating {profile.n_images} synthetic lesions in {args.data_root}")
            make_synthetic_lesions(args.data_root, profile.n_images, size, seed=args.seed)
        barrier()
        frame = load_melanoma(args.data_root)
        train_frame, val_frame = split_by_patient(frame, args.val_fraction, args.seed)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    seed_everything(args.seed)
    train_loader, val_loader = make_loaders(train_frame, val_frame, size, batch_size, workers)
    model = build_model(args.model, num_classes=1, width=width)
    if current.is_main:
        print(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters; "
              f"{len(train_frame)} train / {len(val_frame)} val images "
              f"({train_frame.patient_id.nunique()} / {val_frame.patient_id.nunique()} patients); "
              f"profile {profile.name}, {size} px, {epochs} epochs"
              + (f", {current.size} processes of batch {batch_size}" if current.distributed else ""))
    history = fit(model, train_loader, val_loader, epochs=epochs, lr=args.lr, out_dir=args.out,
                  resume=args.resume, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
                  seed=args.seed, progress=not args.no_progress)
    if len(history) and current.is_main:
        best = history.loc[history["val_auc"].idxmax()]
        print(f"best val_auc {best['val_auc']:.4f} at epoch {int(best['epoch'])}; metrics in {args.out / 'metrics.csv'}")
    shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
