"""The benchmark scripts run, and book/performance.md is exactly what they measured."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def test_performance_page_is_rendered_from_the_committed_results():
    result = _run("render_performance.py", "--check")
    assert result.returncode == 0, result.stderr
    page = (ROOT / "book" / "performance.md").read_text()
    for record in (ROOT / "benchmarks" / "results").glob("train_throughput-*.json"):
        assert f"**{json.loads(record.read_text())['ratio']:.2f}x**" in page


def test_train_throughput_measures_both_loops(tmp_path):
    result = _run(
        "train_throughput.py",
        "--profile",
        "smoke",
        "--images",
        "64",
        "--source-size",
        "128",
        "--rounds",
        "1",
        "--results",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert (
        "tutorial loop" in result.stdout
        and "model alone" in result.stdout
        and "ratio" in result.stdout
    )
    record = json.loads((tmp_path / "train_throughput-cpu.json").read_text())
    assert record["tutorial_images_per_s"] > 0 and record["fit_images_per_s"] > 0
    assert (
        abs(
            record["ratio"]
            - record["fit_images_per_s"] / record["tutorial_images_per_s"]
        )
        < 0.01
    )
    assert record["machine"]["cpu"] and record["profile"] == "smoke"


def test_synthetic_throughput_writes_its_record(tmp_path):
    result = _run(
        "synthetic_throughput.py",
        "--n",
        "20",
        "--size",
        "64",
        "--workers",
        "1",
        "2",
        "--repeats",
        "1",
        "--results",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "synthetic_throughput.json").read_text())
    assert record["n_images"] == 20
    assert sorted(record["runs_s"]) == ["1", "2"]
    assert all(len(runs) == 1 for runs in record["runs_s"].values())
    # one worker or two, the generator writes the same bytes
    assert record["identical_files"] is True
    assert record["speedup"] > 0


def test_module_cost_records_every_model(tmp_path):
    result = _run(
        "module_cost.py",
        "--profiles",
        "smoke",
        "--rounds",
        "1",
        "--results",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    (profile,) = json.loads((tmp_path / "module_cost-cpu.json").read_text())["profiles"]
    assert profile["profile"] == "smoke" and profile["image_size"] == 64
    rows = {row["model"]: row for row in profile["rows"]}
    assert len(rows) == 8 and rows["baseline (GAP)"]["latency vs baseline"] == 1.0
    assert rows["triplet"]["extra parameters"] == 1500  # 300 per stage, five stages
    assert all(
        row["ms / batch of 8"] > 0 and row["MFLOPs / image"] > 0
        for row in rows.values()
    )


def test_attention_memory_shows_the_matrix_is_not_stored(tmp_path):
    result = _run(
        "attention_memory.py",
        "--sides",
        "16",
        "32",
        "--channels",
        "16",
        "--results",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "attention_memory-cpu.json").read_text())
    big = record["rows"][-1]
    assert big["positions"] == 1024 and big["matrix MiB (fp32)"] == 4.0
    assert big["written out (bmm + softmax): peak MiB"] >= big["matrix MiB (fp32)"]
    assert big["memory ratio written out / padded SDPA"] > 2


def test_notebook_times_runs_notebooks_in_a_scratch_copy(tmp_path):
    result = _run(
        "notebook_times.py",
        "--profile",
        "smoke",
        "--notebooks",
        "00",
        "--results",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "notebook_times-smoke.json").read_text())
    assert list(record["seconds"]) == ["00_setup"] and record["seconds"]["00_setup"] > 0
    assert record["profile"] == "smoke"


def test_loader_throughput_compares_both_pipelines(tmp_path):
    result = _run(
        "loader_throughput.py",
        "--images",
        "24",
        "--source-size",
        "256",
        "--size",
        "64",
        "--batch",
        "8",
        "--rounds",
        "1",
        "--results",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "ratio " in result.stdout
    record = json.loads((tmp_path / "loader_throughput-cpu.json").read_text())
    assert (
        record["ratio"] > 0 and record["augment_ratio"] > 0 and record["images"] == 24
    )
    assert {
        "per-image pipeline (decode + augment)",
        "batch-split worker (decode + resize)",
        "batched augmentation on the CPU",
    } <= set(record["ms_per_image"])


def test_precision_cost_records_both_precisions(tmp_path):
    result = _run(
        "precision_cost.py",
        "--profile",
        "smoke",
        "--models",
        "vgg16",
        "--rounds",
        "1",
        "--results",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "precision_cost-cpu.json").read_text())
    assert isinstance(record["machine"]["native_bf16"], bool)
    (row,) = record["rows"]
    assert row["model"] == "vgg16" and set(row["median_ms"]) == {"fp32", "bf16"}
    ratio = row["median_ms"]["bf16"] / row["median_ms"]["fp32"]
    assert row["bf16_over_fp32"] == pytest.approx(ratio, abs=0.01)


def test_step_mfu_measures_every_configuration(tmp_path):
    result = _run(
        "step_mfu.py",
        "--profile",
        "smoke",
        "--models",
        "attnvgg",
        "vgg16",
        "--steps",
        "1",
        "--rounds",
        "1",
        "--results",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "step_mfu-cpu.json").read_text())
    rows = record["rows"]
    # on a CPU: NCHW and channels_last for each model (cuDNN and compile rows need CUDA)
    assert [(r["model"], r["config"]) for r in rows] == [
        ("attnvgg", "NCHW"),
        ("attnvgg", "channels_last"),
        ("vgg16", "NCHW"),
        ("vgg16", "channels_last"),
    ]
    assert all(r["img_s"] > 0 and r["gflop_per_img"] > 0 for r in rows)
    # FLOPs of a training step: forward and backward, about three forward passes
    from course_lib.bench import count_flops
    from course_lib.models import vgg16

    forward = count_flops(vgg16(1, width=1 / 8, head="gap"), (1, 3, 64, 64))
    vgg = next(r for r in rows if r["model"] == "vgg16")
    assert 2.5 < vgg["gflop_per_img"] * 1e9 / forward < 3.2
