"""`python -m portrait` as a user runs it: saved paths on success, one bilingual line and an exit code on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import TEST_KEY

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AI302_", "PORTRAIT_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "portrait", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def api_env(sim, tmp_path):
    return {
        "AI302_API_KEY": TEST_KEY,
        "PORTRAIT_API_BASE": sim.url,
        "PORTRAIT_OUTPUT_DIR": str(tmp_path / "out"),
    }


def test_generate_prints_saved_paths_seed_and_request_id(api_env, photo_path, sim):
    proc = run_cli(
        "generate",
        "--image",
        str(photo_path),
        "--prompt",
        "微笑",
        "--width",
        "768",
        "--seed",
        "9",
        env=api_env,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0].split("\t")
    assert Path(first[0]).is_file() and first[1] == "seed=9" and first[2].startswith("request_id=2")
    assert sim.requests[-1]["body"]["width"] == 768
    assert TEST_KEY not in proc.stdout + proc.stderr


def test_generate_with_preset_and_json_output(api_env, photo_path, sim):
    proc = run_cli("generate", "--image", str(photo_path), "--preset", "anime", "--json", env=api_env)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["preset"] == "anime" and record["request"]["gen_mode"] == "creative"


@pytest.mark.parametrize(
    ("fault", "code", "words"),
    [
        ("gateway:-10004", 4, "top up"),
        ("model:50413", 6, "rephrase"),
        ("gateway:-10001", 3, "AI302_API_KEY"),
        ("nonjson", 7, "retry"),
    ],
)
def test_failure_is_one_bilingual_line_with_an_exit_code(api_env, photo_path, sim, fault, code, words):
    sim.configure(fault=fault)
    proc = run_cli("generate", "--image", str(photo_path), env=api_env)
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert words in lines[0] and any("\u4e00" <= ch <= "\u9fff" for ch in lines[0])
    assert "Traceback" not in proc.stderr


def test_bad_field_is_refused_with_exit_code_2(api_env, photo_path, sim):
    proc = run_cli("generate", "--image", str(photo_path), "--gpen", "1.5", env=api_env)
    assert proc.returncode == 2 and "gpen" in proc.stderr
    assert sim.generation_count == 0


def test_without_a_key_the_cli_says_it_uses_the_simulator(photo_path, tmp_path):
    proc = run_cli(
        "generate",
        "--image",
        str(photo_path),
        env={"PORTRAIT_OUTPUT_DIR": str(tmp_path / "o"), "PORTRAIT_SIM_LATENCY": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "SIMULATED" in proc.stderr and "模拟" in proc.stderr
    run_json = next((tmp_path / "o").glob("*/run.json"))
    assert json.loads(run_json.read_text())["simulated"] is True


def test_presets_lists_every_style():
    proc = run_cli("presets")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) >= 12 and "studio" in proc.stdout
