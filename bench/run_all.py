"""Run every benchmark and write docs/benchmarks.md (or --out).

    python bench/run_all.py            # full run, < 10 minutes
    python bench/run_all.py --quick    # smoke run, < 60 s: tiny counts, small load; figures mean nothing

Each script runs in its own process (`python bench/<script> [--quick] --out <file>`) and replaces its
own section of the report; this script writes the header (date, machine, wall times) and exits
non-zero if any script failed (its section then says so).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run (< 60 s)")
    p.add_argument("--out", type=Path, default=common.DEFAULT_DOC)
    p.add_argument(
        "--only",
        action="append",
        choices=[k for k, _, _ in common.SECTIONS],
        help="run only these sections (repeatable)",
    )
    args = p.parse_args(argv)
    out = args.out.resolve()
    started = time.perf_counter()
    common.write_header(out, "_Run in progress…_")
    common.phone_photo()  # made once, before any timing

    walls: list[str] = []
    failed: list[str] = []
    for key, _heading, script in common.SECTIONS:
        if args.only and key not in args.only:
            continue
        cmd = [sys.executable, script, "--out", str(out)] + (["--quick"] if args.quick else [])
        if key == "load" and not args.quick:
            cmd.append("--profile")  # py-spy breakdown of the server's CPU (skipped when py-spy is absent)
            if not _have_pyspy():
                cmd.remove("--profile")
        t0 = time.perf_counter()
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        res = subprocess.run(cmd, cwd=common.ROOT)
        dt = time.perf_counter() - t0
        walls.append(f"`{script}` {dt:.0f} s")
        if res.returncode != 0:
            failed.append(script)
            common.write_section(
                out,
                key,
                f"**FAILED**: `python {' '.join(cmd[1:])}` exited {res.returncode} after {dt:.0f} s; "
                "see its output.\n",
                [common.Row(key, "script", "failed", "runs", False, " ".join(cmd[1:]))],
            )
    total = time.perf_counter() - started
    mode = "--quick (smoke run; figures are not meaningful)" if args.quick else "full"
    extra = (
        f"Last `python bench/run_all.py{' --quick' if args.quick else ''}`: {mode}, wall time "
        f"**{total:.0f} s** ({', '.join(walls)})." + (f" **Failed: {', '.join(failed)}.**" if failed else "")
    )
    common.write_header(out, extra)
    print(f"run_all: {total:.0f} s, report in {out}" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


def _have_pyspy() -> bool:
    import shutil

    return shutil.which("py-spy") is not None


if __name__ == "__main__":
    sys.exit(main())
