"""Finetune Studio: fine-tune open LLMs on Kaggle's free GPUs or locally. The app is built by app.factory."""

__version__ = "0.1.0"
