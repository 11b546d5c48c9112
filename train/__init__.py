"""Stage 2: fine-tuning Video-LLaMA-2 with transformers' Trainer, DeepSpeed and peft (`deepspeed train/main.py`)."""
