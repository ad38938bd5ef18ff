"""DPO and ORPO as the trainer computes them, against TRL's trainers on the same weights and batch (within 1e-4)."""
from __future__ import annotations

import math

import peft
import pytest
import torch

from tests.support.data import learnable_pairs
from trainer import records
from trainer.config import TINY_MODEL_ID, Config, Hyperparameters
from trainer.models import Hardware, build_tiny_model, build_tiny_tokenizer, prepare_for_training
from trainer.preference import PreferenceRun, collate_pairs, tokenize_pair
from trainer.protocol import Reporter

datasets = pytest.importorskip("datasets")
trl = pytest.importorskip("trl")
from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # noqa: E402  (only once trl is known to be there)

TOLERANCE = 1e-4
PAIRS = 6


@pytest.fixture(scope="module")
def tokenizer():
    """The built-in model's tokenizer."""
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def canonical_pairs():
    """A few canonical pairs, chosen answers both longer and shorter than the rejected ones."""
    found = [records.canonical(record, "preference") for record in learnable_pairs(PAIRS, seed=5)]
    assert {len(p["chosen"][0]["content"]) > len(p["rejected"][0]["content"]) for p in found} == {True, False}
    return found


@pytest.fixture
def trained_model(tokenizer):
    """The tiny model with a LoRA adapter moved away from zero (a seeded perturbation): policy ≠ reference. A fresh
    one for each test: TRL's trainers change the model they are given (a fresh-clone run once found the policy back
    at the reference, a loss of ln 2, after the tests before it in the same process)."""
    model = peft.get_peft_model(build_tiny_model(tokenizer), peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def our_run(model, tokenizer, tmp_path, method: str, pairs: list, **hyperparameters) -> PreferenceRun:
    """The trainer's own preference run over model, on the CPU in fp32."""
    config = Config(base_model=TINY_MODEL_ID, method=method, hyperparameters=Hyperparameters(**hyperparameters))
    return PreferenceRun(config, Hardware(torch.device("cpu"), "fp32", "cpu"), model, tokenizer, (pairs, []),
                         tmp_path, Reporter())


def our_batch(tokenizer, canonical_pairs) -> tuple[list, dict]:
    """The pairs tokenized and collated by the trainer."""
    pairs = [tokenize_pair(tokenizer, record, 128)[0] for record in canonical_pairs]
    return pairs, collate_pairs(pairs, tokenizer.pad_token_id)


def trl_dpo(model, tokenizer, canonical_pairs, tmp_path, **options):
    """TRL's DPOTrainer over the same model and pairs (it tokenizes them itself)."""
    args = trl.DPOConfig(output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, max_length=128,
                         per_device_train_batch_size=PAIRS, **options)
    trainer = trl.DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(canonical_pairs),
                             processing_class=tokenizer)
    # Given an adapter that is trained already, TRL copies it as the reference ("ref"); without that copy it
    # disables the adapter, as the trainer does: the reference is the base model.
    model.delete_adapter("ref")
    return trainer


def trl_dpo_inputs(batch: dict) -> dict:
    """Our batch in DPOTrainer's keys: the completion mask is where our labels are."""
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "completion_mask": (batch["labels"] != -100).long()}


def test_pairs_are_tokenized_and_collated_exactly_as_trl_does(trained_model, tokenizer, canonical_pairs, tmp_path):
    trainer = trl_dpo(trained_model, tokenizer, canonical_pairs, tmp_path)
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(PAIRS)])
    _, ours = our_batch(tokenizer, canonical_pairs)
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])
    assert torch.equal((ours["labels"] != -100).long(), theirs["completion_mask"])


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_loss_and_rewards_equal_trl(loss_type, trained_model, tokenizer, canonical_pairs, tmp_path):
    pairs, batch = our_batch(tokenizer, canonical_pairs)
    run = our_run(trained_model, tokenizer, tmp_path, "dpo", pairs, beta=0.3, loss_type=loss_type)
    ours = float(run.loss(batch, PAIRS).detach())
    rewards = run.rewards.take()
    trainer = trl_dpo(trained_model, tokenizer, canonical_pairs, tmp_path, beta=0.3, loss_type=[loss_type])
    theirs = float(trainer.compute_loss(trained_model, trl_dpo_inputs(batch)))
    logged = {name: values[-1] for name, values in trainer._metrics["eval"].items()}
    assert abs(ours - theirs) < TOLERANCE and abs(ours - math.log(2)) > 0.01, (ours, theirs)
    assert abs(rewards["reward_margin"] - logged["rewards/margins"]) < TOLERANCE
    assert abs(rewards["rewards_chosen"] - logged["rewards/chosen"]) < TOLERANCE
    assert rewards["reward_accuracy"] == pytest.approx(logged["rewards/accuracies"])


def test_dpo_label_smoothing_mixes_trl_losses_of_both_orders(trained_model, tokenizer, canonical_pairs, tmp_path):
    # Conservative DPO: with probability ε the label is flipped, so the loss is (1 − ε)·L(chosen, rejected) +
    # ε·L(rejected, chosen), where L is TRL's sigmoid loss.
    pairs, batch = our_batch(tokenizer, canonical_pairs)
    ours = float(our_run(trained_model, tokenizer, tmp_path, "dpo", pairs, beta=0.3, label_smoothing=0.2)
                 .loss(batch, PAIRS))
    swapped = {key: torch.cat(value.chunk(2)[::-1]) for key, value in trl_dpo_inputs(batch).items()}
    trainer = trl_dpo(trained_model, tokenizer, canonical_pairs, tmp_path, beta=0.3)
    straight = float(trainer.compute_loss(trained_model, trl_dpo_inputs(batch)))
    flipped = float(trainer.compute_loss(trained_model, swapped))
    assert abs(ours - (0.8 * straight + 0.2 * flipped)) < TOLERANCE


def test_reference_free_dpo_equals_trl_with_a_zero_reference(trained_model, tokenizer, canonical_pairs, tmp_path):
    pairs, batch = our_batch(tokenizer, canonical_pairs)
    ours = float(our_run(trained_model, tokenizer, tmp_path, "dpo", pairs, reference_free=True).loss(batch, PAIRS))
    trainer = trl_dpo(trained_model, tokenizer, canonical_pairs, tmp_path)
    trainer.precompute_ref_logps = True  # the reference's log-probabilities are then read from the batch: all 0
    zeros = torch.zeros(PAIRS)
    theirs = float(trainer.compute_loss(trained_model, {**trl_dpo_inputs(batch), "ref_chosen_logps": zeros,
                                                        "ref_rejected_logps": zeros}))
    assert abs(ours - theirs) < TOLERANCE


def test_orpo_loss_and_rewards_equal_trl(trained_model, tokenizer, canonical_pairs, tmp_path):
    # TRL's ORPO takes its supervised term over the whole chosen sequence: ours does with train_on_prompt.
    pairs, batch = our_batch(tokenizer, canonical_pairs)
    run = our_run(trained_model, tokenizer, tmp_path, "orpo", pairs, beta=0.25, train_on_prompt=True)
    ours = float(run.loss(batch, PAIRS))
    rewards = run.rewards.take()
    args = ORPOConfig(output_dir=str(tmp_path / "orpo"), report_to="none", use_cpu=True, beta=0.25, max_length=128)
    trainer = ORPOTrainer(model=trained_model, args=args, processing_class=tokenizer,
                          train_dataset=datasets.Dataset.from_list(learnable_pairs(PAIRS, seed=5)))
    sides = {name: {key: value.chunk(2)[index] for key, value in batch.items()}
             for index, name in enumerate(("chosen", "rejected"))}
    trl_batch = {f"{side}_{key}": value for side, tensors in sides.items() for key, value in tensors.items()}
    theirs, metrics = trainer.get_batch_loss_metrics(trained_model, trl_batch, train_eval="eval")
    assert abs(ours - float(theirs)) < TOLERANCE, (ours, float(theirs))
    assert abs(rewards["reward_margin"] - float(metrics["eval_rewards/margins"])) < TOLERANCE


def test_orpo_supervised_term_is_completion_only_by_default(trained_model, tokenizer, canonical_pairs, tmp_path):
    pairs, batch = our_batch(tokenizer, canonical_pairs)
    answers = our_run(trained_model, tokenizer, tmp_path, "orpo", pairs).loss(batch, PAIRS)
    whole = our_run(trained_model, tokenizer, tmp_path, "orpo", pairs, train_on_prompt=True).loss(batch, PAIRS)
    assert abs(float(answers) - float(whole)) > 0.01


def test_dpo_loss_of_a_fresh_lora_adapter_is_ln_2(tokenizer, canonical_pairs, tmp_path):
    # A new adapter's B matrices are zero: the policy is the reference, every margin 0, and −log σ(0) = ln 2.
    config = Config(base_model=TINY_MODEL_ID, method="dpo")
    model = prepare_for_training(build_tiny_model(tokenizer), config).train()
    pairs, batch = our_batch(tokenizer, canonical_pairs)
    run = our_run(model, tokenizer, tmp_path, "dpo", pairs)
    assert float(run.loss(batch, PAIRS)) == pytest.approx(math.log(2), abs=1e-6)
    assert run.rewards.take()["reward_margin"] == 0


def test_full_dpo_keeps_a_frozen_copy_as_its_reference_so_its_first_loss_is_ln_2(tokenizer, canonical_pairs,
                                                                                  tmp_path):
    model = build_tiny_model(tokenizer)
    pairs, batch = our_batch(tokenizer, canonical_pairs)
    run = our_run(model, tokenizer, tmp_path, "dpo", pairs, adapter="full", learning_rate=0.01, warmup_ratio=0.0)
    assert run.reference_model is not model and not any(p.requires_grad for p in run.reference_model.parameters())
    loss = run.loss(batch, PAIRS)
    assert float(loss) == pytest.approx(math.log(2), abs=1e-6)
    loss.backward()
    run.update_weights()
    assert float(our_run(model, tokenizer, tmp_path, "dpo", pairs, adapter="full").loss(batch, PAIRS)) == \
        pytest.approx(math.log(2), abs=1e-6), "a new run copies the weights it starts from"
    assert float(run.loss(batch, PAIRS)) != pytest.approx(math.log(2), abs=1e-4), "the copy stayed behind"
