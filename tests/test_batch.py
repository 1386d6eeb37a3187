"""Batch runs against the simulator: resume after Ctrl-C and after failures, never twice, never lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from harness import TEST_KEY
from photo_factory import jpeg_bytes, portrait_image, write

from portrait.batch import (
    MANIFEST_NAME,
    BatchProgress,
    Manifest,
    collect_photos,
    format_progress,
    plan_jobs,
    read_manifest,
    run_batch,
)
from portrait.cli import main
from portrait.presets import load_presets
from portrait.store import RunStore
from portrait.studio import Studio

REPO = Path(__file__).resolve().parent.parent
PRESETS = ("studio", "anime")


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    """Three different photos in a folder, plus a file that is not a photo."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, size in enumerate([(900, 1200), (800, 1000), (1000, 1000)]):
        write(folder / f"person{i}.jpg", jpeg_bytes(portrait_image(size)))
    (folder / "notes.txt").write_text("not a photo")
    return folder


@pytest.fixture
def studio(settings, client):
    """A studio on the simulator allowing two calls at once."""
    return Studio(settings.with_(concurrency=2), client)


@pytest.fixture
def jobs(settings, photo_dir):
    """3 photos x 2 presets x one random seed."""
    presets = [p for p in load_presets(settings.presets_path) if p.id in PRESETS]
    return plan_jobs(collect_photos([photo_dir]), presets, [-1])


def job_lines(path: Path) -> list[dict]:
    return [e for e in Manifest(path).entries() if e.get("type") == "job"]


def batch_runs(root: Path) -> list[dict]:
    return [r.meta for r in RunStore(root).list() if r.meta.get("kind") == "batch"]


def _cli_env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "AI302_API_KEY": TEST_KEY,
        "PORTRAIT_API_BASE": settings.api_base,
        "PYTHONPATH": str(REPO),
    }


def test_ctrl_c_stops_cleanly_and_the_rerun_finishes_without_duplicates(settings, sim, photo_dir, tmp_path):
    out = tmp_path / "batch-out"
    manifest = out / MANIFEST_NAME
    command = [sys.executable, "-m", "portrait", "batch", "--images", str(photo_dir)]
    command += ["--presets", ",".join(PRESETS), "--out", str(out), "--concurrency", "2"]
    sim.configure(latency=0.6)

    proc = subprocess.Popen(
        command, cwd=REPO, env=_cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while sum(e["status"] == "done" for e in job_lines(manifest)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, (
            "batch ended before it could be interrupted"
        )
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, err.decode()
    assert "stopping" in err.decode() and "interrupted" in err.decode()
    first = job_lines(manifest)
    done_first = {e["key"] for e in first if e["status"] == "done"}
    assert 2 <= len(done_first) < 6 and len(first) == len(done_first)  # running jobs finished, none failed
    assert {m["batch_key"] for m in batch_runs(out)} == done_first  # every saved run is in the manifest
    calls_first = sim.generation_count

    sim.configure(latency=0.0)
    rerun = subprocess.run(command, cwd=REPO, env=_cli_env(settings), capture_output=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr.decode()
    lines = job_lines(manifest)
    assert Counter(e["key"] for e in lines if e["status"] == "done") == Counter(
        {k: 1 for k in read_manifest(manifest)}
    )
    assert len(read_manifest(manifest)) == 6
    assert sim.generation_count - calls_first == 6 - len(done_first)
    runs = batch_runs(out)
    assert len(runs) == 6 and len({m["batch_key"] for m in runs}) == 6
    for entry in read_manifest(manifest).values():
        assert entry["status"] == "done" and all((out / p).is_file() for p in entry["outputs"])
    assert b"6/6 done" in rerun.stdout


def test_stop_event_finishes_running_jobs_and_starts_no_more(studio, jobs, sim, settings):
    stop = threading.Event()

    def on_progress(p: BatchProgress) -> None:
        if p.done >= 1:
            stop.set()

    summary = run_batch(studio, jobs, concurrency=1, stop=stop, on_progress=on_progress)

    assert summary.interrupted and summary.done == 1 and sim.generation_count == 1
    again = run_batch(studio, jobs, concurrency=2)
    assert (again.done, again.skipped, again.ran, again.interrupted) == (6, 1, 5, False)
    assert sim.generation_count == 6


def test_a_failed_job_is_retried_alone_on_the_next_run(studio, jobs, sim, settings):
    sim.configure(fault="model:50500", fault_count=1)
    manifest = settings.output_dir / MANIFEST_NAME

    first = run_batch(studio, jobs, concurrency=2)

    assert (first.done, first.failed) == (5, 1)
    [(failed_job, error)] = first.failures
    assert error.code == 50500
    state = read_manifest(manifest)
    assert state[failed_job.key]["status"] == "failed" and state[failed_job.key]["error"]["code"] == 50500
    assert [e["status"] for e in state.values()].count("done") == 5
    before = sim.generation_count

    second = run_batch(studio, jobs, concurrency=2)

    assert (second.done, second.skipped, second.ran, second.failed) == (6, 5, 1, 0)
    assert sim.generation_count - before == 1
    retried = [e for e in job_lines(manifest) if e["key"] == failed_job.key]
    assert [(e["status"], e["attempt"]) for e in retried] == [("failed", 1), ("done", 2)]
    assert len(batch_runs(settings.output_dir)) == 6


def test_a_torn_last_line_is_ignored_and_not_glued_to_the_next(studio, jobs, sim, settings):
    manifest = settings.output_dir / MANIFEST_NAME
    run_batch(studio, jobs[:2], concurrency=2)
    with open(manifest, "ab") as fh:
        fh.write(b'{"type":"job","key":"' + jobs[2].key.encode() + b'","status":"do')

    summary = run_batch(studio, jobs[:3], concurrency=2)

    assert (summary.skipped, summary.ran) == (2, 1)
    assert sim.generation_count == 3
    raw_lines = manifest.read_bytes().split(b"\n")
    assert sum(1 for line in raw_lines if line.startswith(b'{"type":"job"') and line.endswith(b"}")) == 3


def test_a_changed_photo_or_deleted_output_is_a_job_to_run_again(studio, jobs, sim, settings, photo_dir):
    run_batch(studio, jobs, concurrency=2)
    manifest = Manifest(settings.output_dir / MANIFEST_NAME)
    first_output = settings.output_dir / manifest.jobs()[jobs[0].key]["outputs"][0]
    first_output.unlink()
    write(photo_dir / "person2.jpg", jpeg_bytes(portrait_image((700, 900))))
    presets = [p for p in load_presets(settings.presets_path) if p.id in PRESETS]
    replanned = plan_jobs(collect_photos([photo_dir]), presets, [-1])

    summary = run_batch(studio, replanned, concurrency=2)

    assert summary.ran == 1 + 2  # the deleted output, and both styles of the changed photo
    assert sim.generation_count == 6 + 3


def test_seeds_multiply_jobs_and_are_sent_as_given(studio, settings, photo_dir, sim):
    presets = [p for p in load_presets(settings.presets_path) if p.id == "studio"]
    jobs = plan_jobs(collect_photos([photo_dir / "person0.jpg"]), presets, [1, 2], prompt="戴眼镜")

    summary = run_batch(studio, jobs)

    assert summary.done == 2
    assert sorted(r["body"]["seed"] for r in sim.requests) == ["1", "2"]
    assert all("戴眼镜" in r["body"]["prompt"] for r in sim.requests)


def test_cli_batch_with_sheets_writes_one_sheet_per_photo(
    monkeypatch, settings, sim, photo_dir, tmp_path, capsys
):
    monkeypatch.setenv("AI302_API_KEY", TEST_KEY)
    monkeypatch.setenv("PORTRAIT_API_BASE", sim.url)
    out = tmp_path / "out"

    code = main(
        ["batch", "--images", str(photo_dir), "--presets", "studio,anime", "--seeds", "4"]
        + ["--out", str(out), "--sheet"]
    )

    captured = capsys.readouterr()
    assert code == 0, captured.err
    sheets = sorted((out / "sheets").glob("*.png"))
    assert [p.name.split("-")[0] for p in sheets] == ["person0", "person1", "person2"]
    assert "6/6 done" in captured.out and "\r" in captured.err and "ETA" in captured.err


def test_cli_batch_exit_code_says_some_failed(monkeypatch, settings, sim, photo_dir, tmp_path, capsys):
    monkeypatch.setenv("AI302_API_KEY", TEST_KEY)
    monkeypatch.setenv("PORTRAIT_API_BASE", sim.url)
    sim.configure(fault="model:50500", fault_count=1)

    code = main(
        ["batch", "--images", str(photo_dir / "person0.jpg"), "--presets", "studio", "--out", str(tmp_path)]
    )

    assert code == 10 and "failed: person0.jpg / studio" in capsys.readouterr().err


def test_collect_photos_takes_files_and_folders_once_each(photo_dir):
    photos = collect_photos([photo_dir, photo_dir / "person1.jpg"])

    assert [p.name for p in photos] == ["person0.jpg", "person1.jpg", "person2.jpg"]


def test_progress_line_shows_counts_and_eta():
    line = format_progress(BatchProgress(total=12, done=5, failed=1, running=2, elapsed=30.0, eta=75.0))

    assert line == "batch 5/12 done · 1 failed · 2 running · ETA 1:15"


def test_manifest_lines_never_hold_the_key(studio, jobs, settings):
    run_batch(studio, jobs[:2])

    assert TEST_KEY not in (settings.output_dir / MANIFEST_NAME).read_text(encoding="utf-8")
    assert all(json.loads(line) for line in (settings.output_dir / MANIFEST_NAME).read_text().splitlines())
