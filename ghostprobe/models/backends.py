"""Imports every backend module so that their `@register` decorators run (see base.build_model)."""

from importlib import import_module

BACKEND_MODULES = (
    "ghostprobe.models.api.openai_model",
    "ghostprobe.models.api.gemini_model",
    "ghostprobe.models.video_llama.backend",
    "ghostprobe.models.hf_native",
)

for _module in BACKEND_MODULES:
    import_module(_module)
