"""`python -m portrait`: generate portraits, or run the simulator, from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import errors
from .errors import PortraitError
from .params import (
    GEN_MODES,
    SEED_RANDOM,
    SIZE_DEFAULT,
    SIZE_MAX,
    SIZE_MIN,
    STRENGTH_FIELDS,
    VARIATIONS_MAX,
    PortraitRequest,
)
from .settings import Settings

OFFLINE_NOTICE = (
    "未设置 AI302_API_KEY：使用内置模拟器，图片为模拟结果。 / "
    "No AI302_API_KEY: using the built-in simulator; images are SIMULATED, not real results."
)

# One exit code per kind of failure, so scripts can react without parsing text.
EXIT_CODES: dict[type[PortraitError], int] = {
    errors.PresetFileError: 2,
    errors.InvalidInputError: 2,
    errors.AuthError: 3,
    errors.QuotaError: 4,
    errors.LimitError: 4,
    errors.RateLimitError: 5,
    errors.ModerationError: 6,
    errors.UpstreamError: 7,
    errors.RequestTimeoutError: 8,
    errors.ResultFetchError: 9,
}


def exit_code(err: PortraitError) -> int:
    """The process exit code for an error (1 for anything unlisted)."""
    for cls in type(err).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def _add_request_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prompt", default="", help="what to generate (Chinese or English); empty = full reference"
    )
    p.add_argument("--preset", default=None, help="style preset id from presets.yaml (see `presets`)")
    p.add_argument("--width", type=int, default=None, help=f"{SIZE_MIN}-{SIZE_MAX}, default {SIZE_DEFAULT}")
    p.add_argument("--height", type=int, default=None, help=f"{SIZE_MIN}-{SIZE_MAX}, default {SIZE_DEFAULT}")
    for f in STRENGTH_FIELDS:
        flag = "--" + f.name.replace("_", "-")
        p.add_argument(
            flag, dest=f.name, type=float, default=None, help=f"{f.en}, 0-1 step 0.1, default {f.default}"
        )
    p.add_argument(
        "--gen-mode", default=None, choices=("auto", *GEN_MODES), help="default: auto (API decides)"
    )
    p.add_argument("--seed", default=str(SEED_RANDOM), help="-1 = random (the seed used is printed)")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m portrait", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log HTTP activity (never the key)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate portraits from one photo")
    gen.add_argument("--image", required=True, help="photo file or http(s) URL")
    _add_request_flags(gen)
    gen.add_argument(
        "--variations", "-n", type=int, default=1, help=f"1-{VARIATIONS_MAX} images, concurrently"
    )
    gen.add_argument("--out", default=None, help="output folder (default: PORTRAIT_OUTPUT_DIR or ./outputs)")
    gen.add_argument("--json", action="store_true", help="print the saved run as JSON")

    sub.add_parser("presets", help="list the style presets")

    sim = sub.add_parser("simulate", help="run the local 302.AI simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8302)
    sim.add_argument("--latency", type=float, default=1.5, help="seconds per generation")
    sim.add_argument("--fault", default=None, help="inject a fault into every call, e.g. gateway:-10004")
    sim.add_argument("--key", default=None, help="accept only this API key (default: any)")
    _add_batch_parser(sub)
    _add_sheet_parser(sub)
    return parser


def request_from_args(args: argparse.Namespace, settings: Settings) -> tuple[PortraitRequest, dict[str, Any]]:
    """Build the request from flags, a preset's defaults filling what was not given."""
    from .presets import compose_prompt, find_preset, load_presets

    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {"user_prompt": args.prompt}
    preset = None
    if args.preset:
        preset = find_preset(load_presets(settings.presets_path), args.preset)
        fields.update(preset.defaults)
        extra["preset"] = preset.id
    for name in ("width", "height", "gen_mode", *(f.name for f in STRENGTH_FIELDS)):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    fields["prompt"] = compose_prompt(preset, args.prompt)
    fields["seed"] = args.seed
    return PortraitRequest(**fields), extra


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Run one generation and print where the images were saved."""
    from .studio import Studio

    if args.out:
        settings = settings.with_(output_dir=Path(args.out))
    request, extra = request_from_args(args, settings)
    if settings.offline:
        print(OFFLINE_NOTICE, file=sys.stderr)
    with Studio.open(settings) as studio:
        outcome = studio.run(args.image, request, variations=args.variations, extra=extra)
    record = outcome.record
    assert record is not None
    if args.json:
        print(json.dumps({"run": str(record.path), **record.meta}, ensure_ascii=False, indent=2))
    else:
        for item, path in zip(record.meta["images"], record.image_paths):
            print(f"{path}\tseed={item['seed']}\trequest_id={item['request_id']}")
        print(f"saved run: {record.path}")
    for seed, err in outcome.failures:
        print(f"variation seed={seed} failed: {err.message()}", file=sys.stderr)
    return 0 if not outcome.failures else 10


def cmd_presets(settings: Settings) -> int:
    """Print the presets, one per line."""
    from .presets import load_presets

    for p in load_presets(settings.presets_path):
        print(f"{p.id:18} {p.name_zh} / {p.name_en} — {p.description_en}")
    return 0


# -- batch and sheet ------------------------------------------------------------------------


def _add_batch_parser(sub: Any) -> None:
    from .batch import DEFAULT_CONCURRENCY

    batch = sub.add_parser(
        "batch",
        help="photos x presets x seeds, resumable (see portrait/batch.py for the manifest)",
        description="Generate every photo in every style (and seed). Each finished job is saved as a run "
        "and logged in OUT/batch.jsonl; running the same command again skips what is done and retries "
        "the rest. Ctrl-C stops starting new jobs and waits for running ones (twice: abandon them).",
    )
    batch.add_argument("--images", nargs="+", required=True, metavar="PATH", help="photo files or folders")
    batch.add_argument("--presets", required=True, help="comma-separated preset ids, or 'all'")
    seeds = batch.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default=None, help="comma-separated seeds, one job per seed (e.g. 1,2)")
    seeds.add_argument("--seed", default=str(SEED_RANDOM), help="one seed; -1 = random (default)")
    batch.add_argument("--prompt", default="", help="your own words, put into each style's template")
    batch.add_argument(
        "--out", default=None, help="output folder (default: PORTRAIT_OUTPUT_DIR or ./outputs)"
    )
    batch.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"generations at once (default {DEFAULT_CONCURRENCY}, within the API's QPS limit)",
    )
    batch.add_argument("--sheet", action="store_true", help="also write a style sheet PNG per photo")
    batch.add_argument("--lang", default="both", choices=("zh", "en", "both"), help="sheet labels")


def _add_sheet_parser(sub: Any) -> None:
    sheet = sub.add_parser(
        "sheet",
        help="one photo in many styles: a labelled grid PNG, saved as one run",
        description="Generate one portrait per style with one shared seed and save them, with a labelled "
        "grid (sheet.png), as one run. A style that fails shows its reason on the grid.",
    )
    sheet.add_argument("--image", required=True, help="photo file or http(s) URL")
    sheet.add_argument("--presets", default="all", help="comma-separated preset ids, or 'all' (default)")
    sheet.add_argument("--prompt", default="", help="your own words, put into each style's template")
    sheet.add_argument("--seed", default=str(SEED_RANDOM), help="one seed for every style; -1 = random")
    sheet.add_argument("--lang", default="both", choices=("zh", "en", "both"), help="labels on the grid")
    sheet.add_argument(
        "--zip", default=None, metavar="PATH", help="also write a ZIP (images, sheet, manifest)"
    )
    sheet.add_argument(
        "--out", default=None, help="output folder (default: PORTRAIT_OUTPUT_DIR or ./outputs)"
    )
    sheet.add_argument("--json", action="store_true", help="print the saved run as JSON")


def _chosen_presets(settings: Settings, text: str) -> list[Any]:
    """Presets named by "id1,id2" (ids or names) or "all", in the order given, each once."""
    from .presets import find_preset, load_presets

    presets = load_presets(settings.presets_path)
    if text.strip().lower() == "all":
        return list(presets)
    chosen = [find_preset(presets, part) for part in text.split(",") if part.strip()]
    unique = list(dict.fromkeys(p for p in chosen if p is not None))
    if not unique:
        raise errors.InvalidInputError.field("presets", ("预设 id 列表或 all", "preset ids or all"), text)
    return unique


def cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    """Run (or resume) a batch; exit 0 when every job is done, 10 if some failed, 130 if interrupted."""
    from .batch import collect_photos, format_progress, parse_seeds, plan_jobs, run_batch, write_sheets
    from .studio import Studio

    if args.out:
        settings = settings.with_(output_dir=Path(args.out))
    if args.concurrency < 1:
        raise errors.InvalidInputError.field("concurrency", ("至少为 1", "at least 1"), args.concurrency)
    # The studio's upstream limit is the batch's concurrency, so neither outruns the other.
    settings = settings.with_(concurrency=args.concurrency)
    presets = _chosen_presets(settings, args.presets)
    seeds = parse_seeds(args.seeds if args.seeds is not None else args.seed)
    photos = collect_photos(args.images)
    jobs = plan_jobs(photos, presets, seeds, args.prompt)
    if settings.offline:
        print(OFFLINE_NOTICE, file=sys.stderr)
    width = 0
    last = ""

    def show(progress: Any) -> None:
        nonlocal width, last
        line = format_progress(progress)
        if line == last:
            return
        last = line
        # Pad over a longer previous line; \r keeps it on one terminal line.
        print("\r" + line.ljust(width), end="", file=sys.stderr, flush=True)
        width = max(width, len(line))

    info = {"photos": len(photos), "presets": [p.id for p in presets], "seeds": seeds, "prompt": args.prompt}
    with Studio.open(settings) as studio:
        summary = run_batch(studio, jobs, concurrency=args.concurrency, on_progress=show, info=info)
        print(file=sys.stderr)
        if args.sheet and not summary.interrupted:
            summary.sheets = write_sheets(studio, jobs, manifest_path=summary.manifest, lang=args.lang)
    for job, err in summary.failures:
        print(
            f"failed: {job.photo.name} / {job.preset.id} / seed {job.seed}: {err.message()}", file=sys.stderr
        )
    for path in summary.sheets:
        print(f"sheet: {path}")
    print(
        f"{summary.done}/{summary.total} done ({summary.skipped} already done, {summary.ran} run now, "
        f"{summary.failed} failed) · manifest: {summary.manifest}"
    )
    if summary.interrupted:
        print(
            "interrupted: run the same command again to resume / 已中断：再次运行同一命令即可继续",
            file=sys.stderr,
        )
        return 130
    return 0 if not summary.failures else 10


def cmd_sheet(args: argparse.Namespace, settings: Settings) -> int:
    """Make a style sheet; print the sheet's path and each style's outcome."""
    from .sheet import run_sheet, sheet_zip
    from .studio import Studio

    if args.out:
        settings = settings.with_(output_dir=Path(args.out))
    presets = _chosen_presets(settings, args.presets)
    base = PortraitRequest(seed=args.seed)
    if settings.offline:
        print(OFFLINE_NOTICE, file=sys.stderr)
    with Studio.open(settings) as studio:
        result = run_sheet(studio, args.image, presets, user_prompt=args.prompt, base=base, lang=args.lang)
    record = result.record
    if args.zip:
        sheet_zip(result, args.zip)
    if args.json:
        print(json.dumps({"run": str(record.path), **record.meta}, ensure_ascii=False, indent=2))
    else:
        for cell in result.cells:
            where = record.path / cell.file if cell.file else "-"
            print(f"{cell.preset_id:18} {'done  ' if cell.ok else 'FAILED'} {where}")
        print(f"sheet: {record.path / 'sheet.png'}  (seed {result.seed})")
        if args.zip:
            print(f"zip: {args.zip}")
    for cell in result.failures:
        assert cell.error is not None
        print(f"style {cell.preset_id} failed: {cell.error.message()}", file=sys.stderr)
    return 0 if not result.failures else 10


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        # Transport retries are expected and handled; the user gets one line if they all fail.
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        if args.command == "simulate":
            from .simulator import serve

            serve(args.host, args.port, latency=args.latency, fault=args.fault, api_key=args.key)
            return 0
        settings = Settings.from_env()
        if args.command == "presets":
            return cmd_presets(settings)
        if args.command == "batch":
            return cmd_batch(args, settings)
        if args.command == "sheet":
            return cmd_sheet(args, settings)
        return cmd_generate(args, settings)
    except PortraitError as err:
        extra = f" [request_id {err.request_id}]" if err.request_id else ""
        print(f"error: {err.message()}{extra}", file=sys.stderr)
        return exit_code(err)
    except KeyboardInterrupt:
        print("interrupted / 已中断", file=sys.stderr)
        return 130
