"""Preference tuning (DPO, ORPO): pairs tokenized and collated, their losses, and the run that trains on them.

A pair trains as two sequences, the prompt with each answer, in one batch (every chosen answer, then every rejected
one) and with loss on the answers only. DPO's reference is the model the run starts from, without a second copy of
the weights: the base itself, the adapter switched off for its forward pass, or, when the run continues an earlier
adapter (SFT -> DPO), base + that adapter, loaded a second time frozen and switched to for the pass. Full
fine-tuning, which has no adapter to switch, keeps a frozen copy.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812  (torch's own convention)

from trainer import records
from trainer.config import Config, Hyperparameters
from trainer.data import (
    IGNORE_INDEX,
    Example,
    check_record,
    collate,
    file_format,
    read_jsonl,
    render_chat,
    split_validation,
    tokenize_with_spans,
    trained_spans,
    truncate,
)
from trainer.errors import DataError
from trainer.loop import Run
from trainer.models import REFERENCE_ADAPTER, TRAINED_ADAPTER


@dataclass
class Pair:
    """One preference pair as two training sequences: the prompt with the chosen answer, and with the rejected."""

    chosen: Example
    rejected: Example

    def __len__(self) -> int:
        """The tokens of both sequences (what a step computes)."""
        return len(self.chosen) + len(self.rejected)


def tokenize_pair(tokenizer, record: dict, max_length: int) -> tuple[Pair, bool]:
    """A canonical pair as two sequences with loss on each answer; whether either was cut to max_length."""
    prompt, chosen, rejected = records.to_pair(record)
    sides, cut = [], False
    for answer in (chosen, rejected):
        messages = [{**m, "weight": 0} for m in prompt] + [{**m, "weight": 1} for m in answer]
        text = render_chat(tokenizer, messages)
        example, shortened = truncate(tokenize_with_spans(tokenizer, text, trained_spans(tokenizer, messages, text)),
                                      max_length)
        sides.append(example)
        cut = cut or shortened
    return Pair(*sides), cut


def has_answer(example: Example) -> bool:
    """Whether truncation left any answer token to score."""
    return any(label != IGNORE_INDEX for label in example.labels[1:])


def prepare_pairs(path: Path, tokenizer, hp: Hyperparameters) -> tuple[list[Pair], dict]:
    """Read, check and tokenize a preference file; pairs left with no answer token on a side are dropped."""
    numbered = read_jsonl(path)
    if not numbered:
        raise DataError(f"Dataset file {path.name} has no records.")
    record_format = file_format(path, numbered[0])
    if record_format not in records.PAIR_FORMATS:
        raise DataError(f"{path.name} holds {record_format} records; DPO and ORPO learn from preference pairs "
                        "(prompt, chosen, rejected).")
    pairs, truncated, dropped = [], 0, 0
    for number, record in numbered:
        check_record(record, record_format, f"{path.name} line {number}")
        pair, cut = tokenize_pair(tokenizer, record, hp.max_seq_length)
        truncated += cut
        if has_answer(pair.chosen) and has_answer(pair.rejected):
            pairs.append(pair)
        else:
            dropped += 1
    return pairs, {"format": record_format, "records": len(numbered), "truncated": truncated, "dropped": dropped}


def load_pairs(data_dir: Path, config: Config, tokenizer) -> tuple[list[Pair], list[Pair], dict]:
    """Training and validation pairs, and statistics for the start event (pairs are never packed)."""
    hp = config.hyperparameters
    train, train_stats = prepare_pairs(data_dir / config.train_file, tokenizer, hp)
    held = {"truncated": 0, "dropped": 0}
    if config.validation_file:
        validation, held = prepare_pairs(data_dir / config.validation_file, tokenizer, hp)
    else:
        train, validation = split_validation(train, hp.validation_split, hp.seed)
    if not train:
        raise DataError(f"No training pair left in {config.train_file}: truncation took every answer "
                        "(raise max_seq_length).")
    return train, validation, {
        "format": train_stats["format"], "train_examples": len(train), "eval_examples": len(validation),
        "truncated_examples": train_stats["truncated"] + held["truncated"],
        "dropped_examples": train_stats["dropped"] + held["dropped"]}


def collate_pairs(pairs: list[Pair], pad_id: int, pad_to_multiple: int = 1) -> dict:
    """One batch of 2 × len(pairs) sequences: every chosen answer first, then every rejected one."""
    return collate([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id, pad_to_multiple)


def sequence_logps(logits, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probability of each sequence's labelled tokens, how many there are), in fp32."""
    targets, mask = labels[:, 1:], labels[:, 1:] != IGNORE_INDEX
    logits = logits[:, :-1].float()
    # Gather the chosen token's logit and subtract the normaliser: no second vocabulary-wide tensor.
    picked = torch.gather(logits, 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    return (picked * mask).sum(-1), mask.sum(-1)


def dpo_losses(policy: torch.Tensor, reference: torch.Tensor, counts: torch.Tensor, hp: Hyperparameters):
    """DPO per pair, and the implicit rewards β·(log π − log π_ref) of each answer; inputs are [chosen; rejected].

    sigmoid: −log σ(β·Δ), with label smoothing ε the conservative mix (1 − ε)·that + ε·(−log σ(−β·Δ)); ipo: the
    squared distance of Δ per answer token from 1/(2β).
    """
    ratios = policy - reference
    chosen, rejected = ratios.chunk(2)
    if hp.loss_type == "ipo":
        per_token = ratios / counts.clamp(min=1)
        delta = per_token.chunk(2)[0] - per_token.chunk(2)[1]
        losses = (delta - 1 / (2 * hp.beta)) ** 2
    else:
        delta = hp.beta * (chosen - rejected)
        losses = -F.logsigmoid(delta) * (1 - hp.label_smoothing) - F.logsigmoid(-delta) * hp.label_smoothing
    return losses, hp.beta * chosen.detach(), hp.beta * rejected.detach()


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − eˣ) for x < 0, accurate on both sides of −ln 2."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_odds_terms(mean_logps: torch.Tensor, hp: Hyperparameters):
    """ORPO's λ·log σ(log odds(chosen) − log odds(rejected)) per pair, and its rewards λ·mean log-probability."""
    chosen, rejected = mean_logps.chunk(2)
    log_odds = (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))
    return hp.beta * F.logsigmoid(log_odds), hp.beta * chosen.detach(), hp.beta * rejected.detach()


@dataclass
class RewardMeter:
    """The pairs' rewards since the last report, summed on the device (no synchronisation per micro-batch)."""

    chosen: object = 0.0
    rejected: object = 0.0
    correct: object = 0.0
    pairs: int = 0

    def add(self, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        """Account for the rewards of a micro-batch of pairs."""
        self.chosen += chosen.sum()
        self.rejected += rejected.sum()
        self.correct += (chosen > rejected).sum()
        self.pairs += len(chosen)

    def take(self, prefix: str = "") -> dict:
        """The mean rewards, margin and accuracy under the protocol's names; then start over."""
        if not self.pairs:
            return {}
        chosen, rejected = float(self.chosen) / self.pairs, float(self.rejected) / self.pairs
        found = {"rewards_chosen": chosen, "rewards_rejected": rejected, "reward_margin": chosen - rejected,
                 "reward_accuracy": float(self.correct) / self.pairs}
        self.chosen = self.rejected = self.correct = 0.0
        self.pairs = 0
        return {prefix + name: value for name, value in found.items()}


@contextlib.contextmanager
def reference_adapter(model):
    """The frozen reference adapter in use, then the trained adapter again (a preference run has no dropout:
    without_dropout).

    peft's set_adapter makes the adapter it activates trainable and freezes the others: every parameter's
    requires_grad is put back at once, so the reference never needs a gradient and the trained one keeps its own.
    """
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    model.set_adapter(REFERENCE_ADAPTER)
    restore_requires_grad(flags)
    try:
        yield
    finally:
        model.set_adapter(TRAINED_ADAPTER)
        restore_requires_grad(flags)


def restore_requires_grad(flags: list) -> None:
    """Each parameter's requires_grad as recorded."""
    for parameter, flag in flags:
        parameter.requires_grad_(flag)


def without_dropout(model) -> None:
    """Switch off every dropout of the model (the adapter's too), as TRL's DPOTrainer does by default: the policy
    and its reference must be the same network for their log-ratio to mean anything (a fresh or continued adapter
    then starts at exactly ln 2)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


class PreferenceRun(Run):
    """A run of DPO or ORPO: the SFT loop, checkpoints and reports, with pairs and a preference loss."""

    def __init__(self, *args, **kwargs):
        """The SFT run's setup without dropout, plus the reward meter and, for DPO on full weights, a frozen
        reference copy."""
        super().__init__(*args, **kwargs)
        without_dropout(self.model)
        self.rewards = RewardMeter()
        self.reference_model = None
        if self.config.method == "dpo" and not self.hp.reference_free and self.config.adapter == "full":
            self.reference_model = copy.deepcopy(self.model).requires_grad_(False).eval()

    def batch(self, pairs: list[Pair]) -> dict:
        """Collated pair tensors on the device."""
        pad_to = 8 if self.hardware.device.type == "cuda" else 1
        tensors = collate_pairs(pairs, self.tokenizer.pad_token_id, pad_to)
        return {key: value.to(self.hardware.device, non_blocking=True) for key, value in tensors.items()}

    def count_targets(self, batch: dict) -> int:
        """What a step's loss is averaged over: its pairs."""
        return batch["input_ids"].shape[0] // 2

    def loss(self, batch: dict, targets: int):
        """The micro-batch's share of the step's mean pair loss (targets: the step's pairs)."""
        # The reference pass goes first: its logits are gone before the policy's activations are kept, so it costs
        # time but no memory at the peak.
        reference = self.reference_logps(batch) if self.config.method == "dpo" else None
        with self.autocast():
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                use_cache=False).logits
        logps, counts = sequence_logps(logits, batch["labels"])
        if self.config.method == "orpo":
            terms, chosen, rejected = orpo_odds_terms(logps / counts.clamp(min=1), self.hp)
            total = self.orpo_nll(logits, batch) * len(terms) - terms.sum()
        else:
            losses, chosen, rejected = dpo_losses(logps, reference, counts, self.hp)
            total = losses.sum()
        self.rewards.add(chosen, rejected)
        return total / targets

    def orpo_nll(self, logits, batch: dict):
        """ORPO's supervised term: the mean token loss of the chosen answers (whole sequences with train_on_prompt)."""
        pairs = batch["input_ids"].shape[0] // 2
        labels = batch["labels"][:pairs]
        if self.hp.train_on_prompt:
            labels = batch["input_ids"][:pairs].masked_fill(batch["attention_mask"][:pairs] == 0, IGNORE_INDEX)
        return F.cross_entropy(logits[:pairs, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                               ignore_index=IGNORE_INDEX)

    def reference_logps(self, batch: dict):
        """The reference model's summed log-probabilities (zeros when reference_free)."""
        if self.hp.reference_free:
            return torch.zeros(batch["input_ids"].shape[0], device=batch["input_ids"].device)
        model = self.reference_model or self.model
        with torch.no_grad(), self.reference_weights(), self.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           use_cache=False).logits
        return sequence_logps(logits, batch["labels"])[0]

    def reference_weights(self):
        """The reference's weights while the context lasts: the frozen copy of the adapter the run continues, else
        the base (the adapter off); nothing to do for a full run's copy."""
        if self.reference_model is not None or not hasattr(self.model, "disable_adapter"):
            return contextlib.nullcontext()
        if REFERENCE_ADAPTER in self.model.peft_config:
            return reference_adapter(self.model)
        return self.model.disable_adapter()

    def evaluate(self) -> float:
        """The mean pair loss over the validation pairs (their rewards go to the meter)."""
        self.model.eval()
        total, pairs = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(self.validation), self.hp.batch_size):
                batch = self.batch(self.validation[start:start + self.hp.batch_size])
                count = self.count_targets(batch)
                total += float(self.loss(batch, count)) * count
                pairs += count
        self.model.train()
        return total / pairs

    def step_metrics(self) -> dict:
        """The rewards since the last progress line."""
        return self.rewards.take()

    def eval_metrics(self) -> dict:
        """The validation pairs' loss, reward margin and accuracy (the training rewards kept aside meanwhile)."""
        training, self.rewards = self.rewards, RewardMeter()
        loss = self.evaluate()
        found, self.rewards = self.rewards.take("eval_"), training
        return {"eval_loss": loss, "eval_reward_margin": found["eval_reward_margin"],
                "eval_reward_accuracy": found["eval_reward_accuracy"]}
