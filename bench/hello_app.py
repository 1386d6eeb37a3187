"""A one-component Gradio hello world, launched like app.py (host 127.0.0.1, GRADIO_SERVER_PORT).

The baseline for §4: `python bench/hello_app.py` vs `python app.py`, both until GET / answers 200.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

with gr.Blocks() as demo:
    gr.Markdown("Hello")

if __name__ == "__main__":
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
