"""Models behind ghostprobe's evaluation and training stages (Video-LLaMA-2 and others)."""
