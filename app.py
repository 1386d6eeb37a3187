"""Portrait Studio — the Gradio app. `python app.py` locally; on Hugging Face Spaces as app_file.

Thin on purpose: read settings, open the studio (the built-in simulator when there is no
AI302_API_KEY), build the page, launch. `demo` stays at module level for Spaces and
`gradio app.py` reloads.
"""

import ctypes
import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _limit_malloc_arenas() -> None:
    """Cap glibc's per-thread malloc arenas (as MALLOC_ARENA_MAX=2 would).

    Image buffers freed by worker threads otherwise stay in per-thread pools; under load this
    keeps peak memory ~40 % lower (docs/benchmarks.md, section 5).
    """
    if sys.platform.startswith("linux") and "MALLOC_ARENA_MAX" not in os.environ:
        try:
            ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
        except (OSError, AttributeError):
            pass


_limit_malloc_arenas()

from portrait.errors import PresetFileError  # noqa: E402 - analytics must be off before Gradio loads
from portrait.presets import load_presets  # noqa: E402
from portrait.settings import Settings  # noqa: E402
from portrait.studio import Studio  # noqa: E402
from portrait.ui import build_demo, launch_kwargs, queue_kwargs  # noqa: E402

settings = Settings.from_env()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
try:
    presets = load_presets(settings.presets_path)
except PresetFileError as err:
    # A broken presets file stops the app with one line naming the preset and the problem.
    raise SystemExit(f"presets: {err.message()}") from None
studio = Studio.open(settings)
demo = build_demo(studio, presets).queue(**queue_kwargs(settings))

if __name__ == "__main__":
    if studio.offline:
        print("No AI302_API_KEY: running on the built-in simulator (images are SIMULATED).")
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_kwargs(settings),
    )
