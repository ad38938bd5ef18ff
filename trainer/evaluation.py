"""Validation metrics beyond the loss: mean token accuracy and perplexity, from one pass over the validation set."""
from __future__ import annotations

import math

import torch

from trainer.data import IGNORE_INDEX, count_targets

MAX_LOG_PERPLEXITY = 50.0  # exp() of a diverged loss overflows; past this the number means nothing anyway


def batch_totals(run, batch: dict) -> tuple[float, int, int]:
    """(summed token loss, correctly predicted target tokens, target tokens) of one validation batch."""
    targets = count_targets(batch)
    with run.autocast():
        output = run.model(**batch, num_items_in_batch=targets, use_cache=False)
    expected = batch["labels"][:, 1:]
    predicted = output.logits[:, :-1].argmax(dim=-1)
    mask = expected != IGNORE_INDEX
    return float(output.loss) * targets, int(((predicted == expected) & mask).sum()), targets


def validation_metrics(run) -> dict:
    """eval_loss (mean per target token), eval_accuracy (next-token argmax hits) and eval_perplexity."""
    run.model.eval()
    loss, correct, targets = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(run.validation), run.hp.batch_size):
            batch_loss, batch_correct, batch_targets = batch_totals(
                run, run.batch(run.validation[start:start + run.hp.batch_size]))
            loss, correct, targets = loss + batch_loss, correct + batch_correct, targets + batch_targets
    run.model.train()
    mean = loss / targets
    return {"eval_loss": mean, "eval_accuracy": round(correct / targets, 6),
            "eval_perplexity": round(math.exp(min(mean, MAX_LOG_PERPLEXITY)), 4)}
