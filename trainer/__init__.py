"""The training program: LoRA, QLoRA or full fine-tuning of a causal LM, reporting progress as `@@studio` lines."""
