"""Shared helpers for the benchmark scripts: the test photo, timing, machine facts, the report file.

Every script writes one section of docs/benchmarks.md (between HTML comment markers) and keeps
the others; the summary table at the top is rebuilt from the rows that every section stores in
a hidden comment, so running one script alone leaves a consistent report.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import json
import os
import platform
import re
import shlex
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT_DIR = BENCH / "out"  # gitignored: cached photo, scratch files
DEFAULT_DOC = ROOT / "docs" / "benchmarks.md"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# key, heading (the test checks these headings), script
SECTIONS: list[tuple[str, str, str]] = [
    ("prepare", "## 1. Photo preparation", "bench/bench_prepare.py"),
    ("client", "## 2. Client overhead", "bench/bench_client.py"),
    ("concurrency", "## 3. Variations and style sheets", "bench/bench_concurrency.py"),
    ("startup", "## 4. Start-up", "bench/bench_startup.py"),
    ("load", "## 5. Load", "bench/bench_load.py"),
]
HEADINGS = ["# Benchmarks", "## Machine", "## Summary", *(h for _, h, _ in SECTIONS)]


# ------------------------------------------------------------------ command line


QUICK = False  # set by the scripts' argument parsing: a quick run's targets are not judged


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    global QUICK
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny repeat counts and load (a smoke run)")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_DOC, help="report file to update (default: %(default)s)"
    )
    p.add_argument("--runs", type=int, default=None, help="override the number of runs per variant")
    args = p.parse_args(argv)
    QUICK = args.quick
    return args


def command_line(script: str, args: argparse.Namespace) -> str:
    """The exact command that reproduces this section (as a reader would type it from the repo root)."""
    parts = ["python", script]
    if args.quick:
        parts.append("--quick")
    if args.runs is not None:
        parts += ["--runs", str(args.runs)]
    return " ".join(shlex.quote(p) for p in parts)


# ------------------------------------------------------------------ statistics


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def spread(xs: Sequence[float], scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    """'median (min–max, n=N)' for a table cell."""
    if not xs:
        return "—"
    return (
        f"{fmt.format(median(xs) * scale)} ({fmt.format(min(xs) * scale)}–"
        f"{fmt.format(max(xs) * scale)}, n={len(xs)})"
    )


def interleave(variants: dict[str, Callable[[], Any]], runs: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run the variants A, B, A, B, ... (order alternating every round) and time each call."""
    names = list(variants)
    for _ in range(warmup):
        for n in names:
            variants[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        order = names if i % 2 == 0 else list(reversed(names))
        for n in order:
            t0 = time.perf_counter()
            variants[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per-round ratio a/b of interleaved runs (same round = same machine weather)."""
    return [x / y for x, y in zip(a, b) if y > 0]


# ------------------------------------------------------------------ machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kb = int(line.split()[1])
                return f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - any failure means "not installed"
        return "not installed"


def machine_info() -> dict[str, str]:
    return {
        "cores": str(os.cpu_count()),
        "memory": _mem_total(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "pillow": _version("pillow"),
        "gradio": _version("gradio"),
        "gradio_client": _version("gradio_client"),
        "numpy": _version("numpy"),
        "os": f"{platform.system()} {platform.release()}",
    }


def machine_line() -> str:
    m = machine_info()
    return (
        f"{m['cores']} cores, {m['memory']}, {m['cpu']}; Python {m['python']}, Pillow {m['pillow']}, "
        f"Gradio {m['gradio']}"
    )


def now_text() -> str:
    return _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


# ------------------------------------------------------------------ small utilities


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_tree_kb(pid: int) -> int:
    """VmRSS of a process plus all its descendants, in kB (0 when it is gone)."""
    total = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = (task / "children").read_text().split()
                stack.extend(int(k) for k in kids)
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _proc_stat() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of all CPUs since boot."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    steal = v[7] if len(v) > 7 else 0
    return total - idle, total, steal


def _loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return float("nan")


class MachineLoad:
    """How busy the whole (shared) machine was while a section ran, and how much of that was us.

    `ours` counts this process and the children it has waited for (os.times); add the CPU of
    processes still running (e.g. a server) with `add_ours`.
    """

    def __enter__(self) -> MachineLoad:
        self.t0 = time.perf_counter()
        self.stat0 = _proc_stat()
        self.times0 = os.times()
        self.load0 = _loadavg()
        self.extra = 0.0
        return self

    def add_ours(self, cpu_s: float) -> None:
        self.extra += cpu_s

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        busy1, total1, steal1 = _proc_stat()
        busy0, total0, steal0 = self.stat0
        tck = os.sysconf("SC_CLK_TCK")
        t1 = os.times()
        self.ours_s = sum(t1[:4]) - sum(self.times0[:4]) + self.extra
        self.busy_s = (busy1 - busy0) / tck
        self.cores_s = (total1 - total0) / tck or float("nan")
        self.steal_s = (steal1 - steal0) / tck
        self.load1 = _loadavg()

    def text(self) -> str:
        others = max(0.0, self.busy_s - self.ours_s)
        return (
            f"Machine during this section ({self.wall:.0f} s): {self.busy_s / self.cores_s * 100:.0f} % of all "
            f"cores busy, of which this benchmark {self.ours_s / self.cores_s * 100:.0f} % and **other "
            f"processes {others / self.cores_s * 100:.0f} %**; 1-min load average {self.load0:.1f} → "
            f"{self.load1:.1f}; steal {self.steal_s / self.cores_s * 100:.0f} %."
        )


# ------------------------------------------------------------------ the test photo

PHOTO_VERSION = 2
PHOTO_SIZE = (4032, 3024)  # as stored (landscape); EXIF orientation 6 makes it 3024x4032 upright


def _photo_path() -> Path:
    return OUT_DIR / f"phone_12mp_v{PHOTO_VERSION}.jpg"


def photo_is_cached() -> bool:
    return _photo_path().exists()


def phone_photo() -> Path:
    """A 12-MP phone-like JPEG (4032x3024 stored, EXIF orientation 6), made once and cached."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = _photo_path()
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_make_phone_jpeg())
        os.replace(tmp, path)
    return path


def _make_phone_jpeg() -> bytes:
    """A synthetic upright portrait (gradients, bokeh, skin pores, hair strands, woven cloth, sensor
    noise, sharpening), stored sideways with EXIF orientation 6 like a phone held upright. Mostly
    Pillow C operations, so it takes a couple of seconds."""
    import random

    from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

    rnd = random.Random(20240611)
    W, H = PHOTO_SIZE[1], PHOTO_SIZE[0]  # upright portrait: 3024 wide, 4032 tall
    full = (W, H)

    def up(img: Image.Image) -> Image.Image:
        return img.resize(full, Image.Resampling.BICUBIC)

    def noise(size: tuple[int, int], sigma: float) -> Image.Image:
        return Image.effect_noise(size, sigma)  # "L", centred on 128

    # Background: warm-to-cool gradient, soft bokeh discs, fine leafy texture.
    gx = Image.linear_gradient("L").rotate(90).resize((W // 16, H // 16))
    gy = Image.linear_gradient("L").resize((W // 16, H // 16))
    bg = Image.merge(
        "RGB",
        (
            gx.point(lambda v: 90 + v * 90 // 255),
            gy.point(lambda v: 160 - v * 50 // 255),
            ImageChops.invert(gx).point(lambda v: 110 + v * 60 // 255),
        ),
    )
    bg = up(bg)
    bokeh = Image.new("L", (W // 8, H // 8), 0)
    d = ImageDraw.Draw(bokeh)
    for _ in range(60):
        cx, cy, r = rnd.randrange(W // 8), rnd.randrange(H // 8), rnd.randrange(8, 40)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=rnd.randrange(60, 170))
    bokeh = up(bokeh.filter(ImageFilter.GaussianBlur(4)))
    bg = Image.composite(Image.new("RGB", full, (250, 235, 190)), bg, bokeh)
    leaves = up(noise((W // 4, H // 4), 40).filter(ImageFilter.GaussianBlur(1.2)))
    bg = ImageChops.add(bg, Image.merge("RGB", (leaves, leaves, leaves)), 1.0, -128)

    # Shoulders in a woven, striped shirt (a tile repeated: cloth repeats too).
    tile = Image.new("RGB", (240, 240), (40, 70, 130))
    td = ImageDraw.Draw(tile)
    for i in range(0, 240, 6):
        td.line((i, 0, i, 239), fill=(52, 82, 142), width=2)
        td.line((0, i, 239, i), fill=(32, 60, 118), width=2)
    for i in range(0, 240, 60):
        td.line((i + 30, 0, i + 30, 239), fill=(90, 115, 160), width=9)
    shirt = Image.new("RGB", full)
    for x in range(0, W, 240):
        for y in range(0, H, 240):
            shirt.paste(tile, (x, y))
    body = Image.new("L", full, 0)
    ImageDraw.Draw(body).ellipse((0.02 * W, 0.66 * H, 0.98 * W, 1.5 * H), fill=255)
    img = Image.composite(shirt, bg, body)

    # Neck and face: shaded skin with pore-scale texture.
    skin_small = ImageOps.colorize(
        Image.radial_gradient("L").resize((W // 16, H // 16)), (232, 186, 156), (150, 105, 85)
    )
    skin = ImageChops.add(up(skin_small), Image.merge("RGB", (noise(full, 7),) * 3), 1.0, -128)
    skin = skin.filter(ImageFilter.GaussianBlur(0.8))
    face = Image.new("L", full, 0)
    fd = ImageDraw.Draw(face)
    fd.rectangle((0.41 * W, 0.5 * H, 0.59 * W, 0.7 * H), fill=255)
    fd.ellipse((0.3 * W, 0.21 * H, 0.7 * W, 0.59 * H), fill=255)
    img = Image.composite(skin, img, face.filter(ImageFilter.GaussianBlur(3)))

    # Hair: dark, with fine strands (noise stretched along the fall of the hair).
    strands = noise((W, H // 24), 45).resize(full, Image.Resampling.BICUBIC)
    hair = ImageOps.colorize(strands, (18, 12, 10), (120, 85, 60))
    hair_mask = Image.new("L", full, 0)
    hd = ImageDraw.Draw(hair_mask)
    hd.ellipse((0.26 * W, 0.13 * H, 0.74 * W, 0.53 * H), fill=255)
    hd.ellipse((0.31 * W, 0.27 * H, 0.69 * W, 0.62 * H), fill=0)
    hd.rectangle((0.31 * W, 0.3 * H, 0.69 * W, 0.62 * H), fill=0)
    img = Image.composite(hair, img, hair_mask.filter(ImageFilter.GaussianBlur(6)))

    # Eyes, lashes, brows, nose, mouth, a caption: hard edges and small detail.
    d = ImageDraw.Draw(img)
    for ex in (0.42, 0.58):
        cx, cy = ex * W, 0.39 * H
        d.ellipse((cx - 95, cy - 45, cx + 95, cy + 45), fill=(245, 242, 238))
        d.ellipse((cx - 42, cy - 42, cx + 42, cy + 42), fill=(80, 55, 35))
        d.ellipse((cx - 18, cy - 18, cx + 18, cy + 18), fill=(12, 10, 10))
        d.ellipse((cx + 6, cy - 20, cx + 18, cy - 8), fill=(255, 255, 255))
        for k in range(15):
            a = -0.9 + k * 0.13
            d.line((cx + 95 * a, cy - 40, cx + 108 * a, cy - 72), fill=(20, 15, 15), width=3)
        d.arc((cx - 120, cy - 150, cx + 120, cy - 40), 200, 340, fill=(50, 35, 25), width=22)
    d.line((0.5 * W, 0.41 * H, 0.48 * W, 0.47 * H), fill=(175, 125, 100), width=10)
    d.chord((0.43 * W, 0.49 * H, 0.57 * W, 0.55 * H), 0, 180, fill=(170, 70, 80))
    d.text((0.1 * W, 0.95 * H), "PORTRAIT STUDIO BENCH 12MP", fill=(240, 240, 240), font_size=60)
    img = img.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))  # phone sharpening

    # Sensor noise: luma plus a little chroma.
    luma = noise(full, 2.5)
    sensor = Image.merge("RGB", tuple(ImageChops.add(luma, noise(full, 1.2), 1.0, -128) for _ in range(3)))
    upright = ImageChops.add(img, sensor, 1.0, -128)

    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 rotates it back clockwise
    assert stored.size == PHOTO_SIZE
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    exif[0x010F] = "BenchPhone"  # Make
    exif[0x0110] = "Synthetic 12MP"  # Model
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif.tobytes(), subsampling="4:2:0")
    return buf.getvalue()


def upright_reference() -> Any:
    """Not used for timing: the decoded, upright photo (for quality checks)."""
    from PIL import Image, ImageOps

    with Image.open(phone_photo()) as img:
        return ImageOps.exif_transpose(img).convert("RGB")


# ------------------------------------------------------------------ the report file


@dataclass
class Row:
    """One figure in the summary: what, measured value, target, met? (None: no target)."""

    section: str
    figure: str
    value: str
    target: str
    met: bool | None
    command: str


_SECTION_RE = r"<!-- section:{key} -->\n.*?<!-- /section:{key} -->\n"
_ROWS_RE = re.compile(r"<!-- rows: (.*?) -->", re.S)


def _blank_doc() -> str:
    parts = [
        "# Benchmarks\n\n<!-- header -->\n<!-- /header -->\n\n## Summary\n\n<!-- summary -->\n<!-- /summary -->\n"
    ]
    for key, heading, script in SECTIONS:
        parts.append(
            f"\n<!-- section:{key} -->\n{heading}\n\n_Not run yet: `python {script}`._\n<!-- /section:{key} -->\n"
        )
    return "".join(parts)


def header_text(extra: str = "") -> str:
    m = machine_info()
    lines = [
        "Plain scripts, run by hand: `python bench/run_all.py` (everything, < 10 min) or any "
        "`python bench/bench_*.py` alone; `--quick` is a smoke run (tiny counts) used by "
        "`tests/test_bench_quick.py`, and its figures mean nothing. Each section names the exact "
        "command behind its figures. Medians are over interleaved runs (A, B, B, A, ...); ratios "
        "are per-round ratios of runs made side by side, then their median. The machine is shared "
        "and noisy, so min–max ranges are shown too. No figure here is asserted by any test.",
        "",
        "## Machine",
        "",
        f"- Written: {now_text()}",
        f"- CPU: {m['cpu']} — {m['cores']} cores (shared)",
        f"- Memory: {m['memory']}",
        f"- OS: {m['os']}",
        f"- Python {m['python']}, Pillow {m['pillow']}, Gradio {m['gradio']}, "
        f"gradio_client {m['gradio_client']}, numpy {m['numpy']}",
    ]
    if extra:
        lines += ["", extra]
    return "\n".join(lines) + "\n"


def _summary(doc: str) -> str:
    rows: list[dict[str, Any]] = []
    for key, _, _ in SECTIONS:
        m = re.search(_SECTION_RE.format(key=key), doc, re.S)
        if not m:
            continue
        r = _ROWS_RE.search(m.group(0))
        if r:
            rows += json.loads(r.group(1).replace("&#45;&#45;", "--"))
    if not rows:
        return "_No figures yet._\n"
    out = ["| § | figure | measured | target | met? | command |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "**NO**", None: "—"}[row["met"]]
        out.append(
            f"| {row['section']} | {row['figure']} | {row['value']} | {row['target']} | {met} | `{row['command']}` |"
        )
    out.append("")
    out.append(
        "Each section below gives the set-up, the spread of the runs and, where a target is missed, why."
    )
    return "\n".join(out) + "\n"


def _replace_block(doc: str, start: str, end: str, body: str) -> str:
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.S)
    return pattern.sub(lambda _m: f"{start}\n{body}{end}", doc, count=1)


def write_section(
    out: Path, key: str, body: str, rows: Sequence[Row], *, header_extra: str | None = None
) -> None:
    """Replace one section of the report (creating the file if needed) and rebuild the summary."""
    heading = next(h for k, h, _ in SECTIONS if k == key)
    doc = out.read_text(encoding="utf-8") if out.exists() else _blank_doc()
    if f"<!-- section:{key} -->" not in doc or "<!-- header -->" not in doc:
        doc = _blank_doc()
    if QUICK:
        rows = [Row(r.section, r.figure, r.value, r.target, None, r.command) for r in rows]
    rows_json = json.dumps([asdict(r) for r in rows], ensure_ascii=False).replace("--", "&#45;&#45;")
    block = f"<!-- section:{key} -->\n{heading}\n\n{body.rstrip()}\n\n<!-- rows: {rows_json} -->\n<!-- /section:{key} -->\n"
    doc = re.sub(_SECTION_RE.format(key=key), lambda _m: block, doc, count=1, flags=re.S)
    if header_extra is not None or "- Written:" not in doc:
        doc = _replace_block(doc, "<!-- header -->", "<!-- /header -->", header_text(header_extra or ""))
    doc = _replace_block(doc, "<!-- summary -->", "<!-- /summary -->", _summary(doc))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, out)


def write_header(out: Path, extra: str = "") -> None:
    doc = out.read_text(encoding="utf-8") if out.exists() else _blank_doc()
    if "<!-- header -->" not in doc:
        doc = _blank_doc()
    doc = _replace_block(doc, "<!-- header -->", "<!-- /header -->", header_text(extra))
    doc = _replace_block(doc, "<!-- summary -->", "<!-- /summary -->", _summary(doc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")


def section_preamble(args: argparse.Namespace, script: str) -> str:
    mode = " **QUICK smoke run: figures are not meaningful.**" if args.quick else ""
    return f"Command: `{command_line(script, args)}` — {now_text()}, {machine_line()}.{mode}\n"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"
