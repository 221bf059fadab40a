"""How much the book's trained results move with the seed and the precision.

    python benchmarks/lesson_spread.py --seeds 0 1 2 --precisions fp32 bf16 --results benchmarks/results

For every seed and precision (float32, or bf16 autocast) it trains what the ``cpu`` profile's
chapters train — chapter 02's GAP baseline, chapter 10's AttnVGG, chapter 11's AttnVGG
without the global branch and the one trained with ink, chapter 12's mask-supervised
AttnVGG (×100 weights), chapter 13's detector — with the course's recipes, and computes
each quantity a chapter asserts, the way the chapter computes it. The seed is the training
seed (initial weights, augmentation, batch order); the data set and its split stay the
book's (seed 0), so the spread is what a reader who re-runs a chapter with another seed
would see. ``lesson_spread-cpu.json`` keeps every value; CONTRIBUTING.md reports the
spread, and each chapter's thresholds sit below the smallest value measured here.

Runs go to a folder of their own (``--runs``, default a temporary one), never to the
book's ``notebooks/runs``. About 7 minutes per seed and precision on 2 cores in float32.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from records import describe_machine, save_record  # noqa: E402

PRECISIONS = {"fp32": "0", "bf16": "1"}
#: chapter 11's explanation tests run on the first melanoma images of the test side
FAITHFULNESS_IMAGES, SANITY_IMAGES = 96, 48


def _energy(maps, names, masks):
    from course_lib.saliency import localisation_table

    return localisation_table({n: maps[n] for n in names}, masks)


def _explanation_tests(model, test_masked, maps, patients, size) -> dict:
    """Chapter 11's sanity checks and deletion/insertion areas, as the chapter runs them."""
    import torch

    from course_lib.data import BatchNormalize
    from course_lib.faithfulness import faithfulness_table
    from course_lib.occlusion import occlusion_maps
    from course_lib.saliency import MAP_NAMES, baseline_maps
    from course_lib.sanity import attnvgg_explanations, cascading_randomization

    out = {}
    melanoma = np.flatnonzero(maps["target"] == 1)[:FAITHFULNESS_IMAGES]
    # the dataset's uint8 images, normalised as the loader normalises its batches
    images = BatchNormalize()(
        torch.stack([test_masked.dataset[i][0] for i in melanoma])
    )[0]
    cascade = cascading_randomization(
        model, images[:SANITY_IMAGES], attnvgg_explanations
    ).set_index(["randomised", "method"])["rank correlation"]
    for method in ("pool-3 attention", "pool-4 attention", "Grad-CAM"):
        for step in ("classifier", "stage 1"):
            out[f"11 sanity {method}, randomised to {step}"] = float(
                cascade[step, method]
            )
    k = len(melanoma)
    candidates = {
        **{name: maps[name][melanoma] for name in MAP_NAMES},
        "occlusion": occlusion_maps(model, images),
        "random map": baseline_maps(k, size, "random", seed=0),
        "centre blob": baseline_maps(k, size, "centre"),
    }
    table, _ = faithfulness_table(model, images, candidates, groups=patients[melanoma])
    for name in candidates:
        if name == "random map":
            continue
        for mode in ("deletion", "insertion"):
            out[f"11 {name} {mode} - random"] = float(
                table.loc[name, f"{mode} − random map"]
            )
            for end in ("low", "high"):
                out[f"11 {name} {mode} - random, {end}"] = float(
                    table.loc[name, f"{mode} {end}"]
                )
    return out


def measure(profile, seed: int, device) -> dict:
    """Every asserted quantity of chapters 02 and 10–13 for one training seed."""
    import course_lib.recipes as recipes
    from course_lib.detection import (
        LesionBoxes,
        detection_grad_cam,
        detection_loaders,
        detection_map,
    )
    from course_lib.evaluation import auc_ci, compare_auc
    from course_lib.losses import AttentionMaskLoss
    from course_lib.runspec import ModelSpec, TrainConfig
    from course_lib.saliency import (
        baseline_maps,
        collect_maps,
        localisation_table,
        verdicts,
    )
    from course_lib.train import evaluate, train_run

    out: dict = {}
    train_frame, val_frame, test_frame = recipes.lesion_splits(profile)
    train_loader, val_loader = recipes.profile_loaders(profile, train_frame, val_frame)
    test_loader = recipes.eval_loader(profile, test_frame, device=device)
    patients = test_frame.patient_id.to_numpy()

    def scored(m, loader=test_loader):
        run = evaluate(m, loader, device=device, return_predictions=True)
        return run["targets"], run["scores"]

    # chapter 02: the GAP baseline, last epoch on the test patients (and the best
    # epoch's validation AUC, which the chapter contrasts with it)
    baseline, history = train_run(
        ModelSpec("vgg16", {"width": profile.width}),
        train_loader,
        val_loader,
        TrainConfig.for_profile(profile, device, seed=seed),
        tag="02-baseline",
        root=recipes.RUNS,
        verbose=False,
    )
    out["02 baseline best AUC"] = float(history.val_auc.max())
    out["02 baseline last AUC"] = float(history.val_auc.iloc[-1])
    interval = auc_ci(*scored(baseline), groups=patients)
    out["02 baseline test AUC"] = interval.estimate
    out["02 baseline test AUC low"] = interval.low

    # chapter 10: AttnVGG, last epoch
    train = dict(seed=seed, device=device, verbose=False)
    model, history = recipes.train_attnvgg(
        profile, train_loader, val_loader, tag="softmax", **train
    )
    auc = float(history.val_auc.iloc[-1])
    out["10 AttnVGG AUC"] = auc
    targets, plain_scores = scored(model)
    out["10 AttnVGG test AUC"] = float(auc_ci(targets, plain_scores).estimate)

    # chapter 11, sections 2-4: Grad-CAM against the lesion
    test_masked = recipes.eval_loader(profile, test_frame, with_mask=True)
    maps = collect_maps(model, test_masked, device=device, target="melanoma")
    n, size = len(maps["mask"]), maps["mask"].shape[-2:]
    table = localisation_table(
        {
            "pool-3 attention": maps["pool-3 attention"],
            "pool-4 attention": maps["pool-4 attention"],
            "Grad-CAM": maps["Grad-CAM"],
            "random map": baseline_maps(n, size, "random", seed=0),
        },
        maps["mask"],
    )
    verdict = verdicts(table)
    for name in ("pool-3 attention", "pool-4 attention", "Grad-CAM"):
        # (no row when no map has any signal, as after one epoch of the smoke profile)
        out[f"11 {name} energy / random"] = float(
            verdict["energy / random"].get(name, np.nan)
        )
    out["11 Grad-CAM pointing / random"] = float(
        table.loc["Grad-CAM", "pointing game"]
        / table.loc["random map", "pointing game"]
    )

    # chapter 11, section 5: do the maps pass their own tests?
    out.update(_explanation_tests(model, test_masked, maps, patients, size))

    # chapter 11, section 6: without the global branch
    no_global, no_global_history = recipes.train_attnvgg(
        profile,
        train_loader,
        val_loader,
        tag="no-global-branch",
        global_branch=False,
        **train,
    )
    without = collect_maps(no_global, test_masked, device=device, gradcam=False)
    gates = ("pool-3 attention", "pool-4 attention")
    moved = (
        _energy(without, gates, without["mask"])["energy in mask"]
        - table.loc[list(gates), "energy in mask"]
    )
    out["11 pool-3 moves onto the lesion"] = float(moved["pool-3 attention"])
    out["11 pool-4 moves onto the lesion"] = float(moved["pool-4 attention"])
    out["11 no-global AUC - AttnVGG AUC"] = float(
        no_global_history.val_auc.iloc[-1] - auc
    )

    # chapter 11, section 7: the ink shortcut
    cue_train, cue_val, cue_test = recipes.lesion_splits(
        profile, spurious_cue="ink", cue_rates=(0.1, 0.9)
    )
    cue_model, _ = recipes.train_attnvgg(
        profile,
        *recipes.profile_loaders(profile, cue_train, cue_val),
        tag="ink-cue",
        **train,
    )

    def auc_of(m, frame):
        loader = recipes.eval_loader(profile, frame)
        return evaluate(m, loader, device=device)["auc"]

    with_ink, without_ink = auc_of(cue_model, cue_test), auc_of(cue_model, test_frame)
    honest_drop = auc_of(model, cue_test) - auc_of(model, test_frame)
    out["11 ink inflates the AUC by"] = float(with_ink - without_ink)
    out["11 ink drop minus honest drop"] = float(with_ink - without_ink - honest_drop)
    inked = cue_test[cue_test.cue == 1].reset_index(drop=True)
    inked["mask_path"] = inked["cue_path"]
    cue_masked = recipes.eval_loader(profile, inked, with_mask=True)
    on_cue = {
        "cue": collect_maps(cue_model, cue_masked, device=device, target="melanoma"),
        "honest": collect_maps(model, cue_masked, device=device, target="melanoma"),
    }
    area = float(on_cue["honest"]["mask"].mean())
    names = ("pool-3 attention", "pool-4 attention", "Grad-CAM")
    energy = {
        who: _energy(m, names, m["mask"])["energy in mask"] for who, m in on_cue.items()
    }
    for name in names:
        out[f"11 ink exposure, {name}"] = float(
            energy["cue"][name] / max(energy["honest"][name], area)
        )

    # chapter 12: attention supervised with the lesion masks (×100 weights)
    train_masked, val_masked_loader = recipes.profile_loaders(
        profile, train_frame, val_frame, with_mask=True
    )
    strong, strong_history = recipes.train_attnvgg(
        profile,
        train_masked,
        val_masked_loader,
        aux_loss=AttentionMaskLoss((0.1, 1.0)),
        tag="mask-dice-0.1-1.0",
        **train,
    )
    supervised = collect_maps(strong, test_masked, device=device, gradcam=False)
    plain = collect_maps(model, test_masked, device=device, gradcam=False)
    random_energy = table.loc["random map", "energy in mask"]
    strong_energy = _energy(supervised, gates, supervised["mask"])["energy in mask"]
    gain = strong_energy - _energy(plain, gates, plain["mask"])["energy in mask"]
    for name in gates:
        out[f"12 {name} gain in energy"] = float(gain[name])
        out[f"12 {name} energy / random"] = float(strong_energy[name] / random_energy)
    out["12 supervised AUC - AttnVGG AUC"] = float(
        strong_history.val_auc.iloc[-1] - auc
    )
    cost = compare_auc(targets, scored(strong)[1], plain_scores, groups=patients)
    out["12 supervised - AttnVGG test AUC, low"] = cost.low
    out["12 supervised - AttnVGG test AUC"] = cost.difference

    # chapter 13: the detector
    detector, _ = recipes.train_lesion_detector(
        profile, train_frame, seed=seed, device=device, verbose=False
    )
    _, test_boxes = detection_loaders(
        train_frame, test_frame, profile.image_size, profile.batch_size
    )
    out["13 detector mAP@0.5"] = float(
        detection_map(detector, test_boxes, device=device)["map_50"]
    )
    items = LesionBoxes(test_frame, profile.image_size)
    cams = []
    for i in range(len(test_frame)):
        try:
            cams.append(detection_grad_cam(detector, items[i][0], box_index=0)[0])
        except ValueError:  # no box: nothing to explain
            cams.append(np.zeros(tuple(size), dtype=np.float32))
    cam_table = localisation_table(
        {
            "detector Grad-CAM": np.stack(cams),
            "random map": baseline_maps(n, size, "random"),
        },
        maps["mask"],
    )
    # (no row when no map has any signal, as after one epoch of the smoke profile)
    out["13 detector Grad-CAM energy / random"] = float(
        verdicts(cam_table)["energy / random"].get("detector Grad-CAM", np.nan)
    )
    return out


#: Bounds that are upper limits of a difference's size (|value| must stay below them); every
#: other quantity is asserted from below (it must stay above its chapter's threshold).
AT_MOST = ", at most"


def asserted(values: dict) -> dict[str, dict[str, float]]:
    """The quantities the chapters assert, by chapter, under the names of their ``EXPECT``."""
    v = values
    return {
        "02": {"baseline test AUC": v["02 baseline test AUC"]},
        "10": {"AttnVGG test AUC": v["10 AttnVGG test AUC"]},
        "11": {
            "Grad-CAM energy / random": v["11 Grad-CAM energy / random"],
            "Grad-CAM pointing / random": v["11 Grad-CAM pointing / random"],
            "AUC change without the global branch" + AT_MOST: abs(
                v["11 no-global AUC - AttnVGG AUC"]
            ),
            "ink inflates the AUC by": v["11 ink inflates the AUC by"],
            "ink drop minus honest drop": v["11 ink drop minus honest drop"],
            "Grad-CAM rank correlation, classifier re-initialised" + AT_MOST: v[
                "11 sanity Grad-CAM, randomised to classifier"
            ],
            "Grad-CAM insertion − random, lower end": v[
                "11 Grad-CAM insertion - random, low"
            ],
        },
        "12": {
            "gain in energy, weaker gate": min(
                v["12 pool-3 attention gain in energy"],
                v["12 pool-4 attention gain in energy"],
            ),
            "energy / random, weaker gate": min(
                v["12 pool-3 attention energy / random"],
                v["12 pool-4 attention energy / random"],
            ),
            "AUC loss with mask supervision" + AT_MOST: -v[
                "12 supervised - AttnVGG test AUC, low"
            ],
        },
        "13": {
            "map_50": v["13 detector mAP@0.5"],
            "detector energy / random": v["13 detector Grad-CAM energy / random"],
        },
    }


def summarise(values: list[dict]) -> dict:
    keys = values[0].keys()
    return {
        k: {
            "min": float(np.min([v[k] for v in values])),
            "max": float(np.max([v[k] for v in values])),
            "mean": float(np.mean([v[k] for v in values])),
        }
        for k in keys
    }


def asserted_spread(runs: dict) -> dict:
    """For each chapter's asserted quantity: its smallest and largest value over every run."""
    every = [asserted(v) for by_seed in runs.values() for v in by_seed.values()]
    return {
        chapter: {
            name: {
                "min": min(a[chapter][name] for a in every),
                "max": max(a[chapter][name] for a in every),
            }
            for name in quantities
        }
        for chapter, quantities in every[0].items()
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--precisions", nargs="+", choices=list(PRECISIONS), default=list(PRECISIONS)
    )
    parser.add_argument(
        "--profile", default="cpu", help="cpu (the book's), or smoke to try it"
    )
    parser.add_argument("--runs", type=Path, default=None, help="where runs are kept")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)

    import course_lib.recipes as recipes
    from course_lib.config import get_device, get_profile

    recipes.RUNS = args.runs or Path(tempfile.mkdtemp(prefix="lesson-spread-"))
    profile, device = get_profile(args.profile), get_device()
    record = {
        "machine": describe_machine(device),
        "profile": profile.name,
        "seeds": args.seeds,
        "runs": {},
    }
    for precision in args.precisions:
        os.environ["COURSE_AMP"] = PRECISIONS[precision]
        for seed in args.seeds:
            started = time.perf_counter()
            values = measure(profile, seed, device)
            values["seconds"] = time.perf_counter() - started
            record["runs"].setdefault(precision, {})[str(seed)] = values
            print(precision, seed, {k: round(v, 3) for k, v in values.items()})
            record["spread"] = {
                p: summarise(list(runs.values())) for p, runs in record["runs"].items()
            }
            record["asserted"] = asserted_spread(record["runs"])
            save_record(args.results, f"lesson_spread-{profile.name}.json", record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
