"""Stage 4 (deploy): scanning long recordings for ghost probing, `python scan/main.py model=... input=...`."""
