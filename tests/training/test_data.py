"""From JSONL records to training sequences: formats, loss masks, truncation, packing and batch order."""
from __future__ import annotations

import collections
import random
import re

import pytest
import torch

from tests.support.training import write_jsonl
from trainer import records
from trainer.config import Hyperparameters
from trainer.data import IGNORE_INDEX, Example, collate, pack_examples, prepare_file, split_validation, tokenize_record
from trainer.errors import DataError
from trainer.loop import Plan, epoch_batches
from trainer.models import DEFAULT_CHAT_TEMPLATE, build_tiny_model, build_tiny_tokenizer

CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."},
                     {"role": "assistant", "content": "Hi there!"}]}
# Phi-3's shape: a conversation that does not end with a generation prompt gets an extra end-of-text.
PHI_LIKE_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
                     "{% if add_generation_prompt %}<|assistant|>\n{% else %}<|pad|>{% endif %}")
# Qwen's shape: ChatML markers in plain text, and a default system turn when the conversation has none.
CHATML_TEMPLATE = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\nBe helpful.<|im_end|>\n{% endif %}"
                   "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                   "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# Gemma's shape: a template that refuses system turns.
NO_SYSTEM_TEMPLATE = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                      "{% endif %}" + DEFAULT_CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def tokenizer():
    """The tiny model's tokenizer."""
    return build_tiny_tokenizer()


def trained_text(tokenizer, example: Example) -> str:
    """The text of the tokens that carry loss."""
    return tokenizer.decode([label for label in example.labels if label != IGNORE_INDEX])


def chat(*turns: str, weights: tuple = ()) -> dict:
    """A chat record of alternating user and assistant turns; weights apply to the assistant turns."""
    messages = [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(turns)]
    for message, weight in zip(messages[1::2], weights, strict=False):
        message["weight"] = weight
    return {"messages": messages}


@pytest.mark.parametrize("record, expected", [
    (CHAT, "chat"),
    ({"instruction": "Add.", "input": "2 2", "output": "4"}, "instruction"),
    ({"prompt": "2+2=", "completion": "4"}, "prompt_completion"),
    ({"text": "Once upon a time."}, "text"),
    ({"question": "?", "answer": "!"}, None),
])
def test_the_format_is_detected_from_the_keys(record, expected):
    assert records.detect(record) == expected


def test_only_the_assistant_answer_carries_loss(tokenizer):
    example = tokenize_record(tokenizer, CHAT, "chat", train_on_prompt=False)
    assert trained_text(tokenizer, example) == "Hi there!<|end|>\n"
    answer_start = example.labels.index(next(label for label in example.labels if label != IGNORE_INDEX))
    prompt = tokenizer.decode(example.input_ids[:answer_start])
    assert prompt == "<|bos|><|system|>\nBe brief.<|end|>\n<|user|>\nSay hi.<|end|>\n<|assistant|>\n"
    assert all(label == IGNORE_INDEX for label in example.labels[:answer_start])
    assert all(label in (token, IGNORE_INDEX) for label, token in zip(example.labels, example.input_ids,
                                                                             strict=True))


def test_every_assistant_turn_is_trained_unless_its_weight_is_zero(tokenizer):
    record = chat("One?", "First.", "Two?", "Second.", "Three?", "Third.", weights=(1, 0, 1))
    example = tokenize_record(tokenizer, record, "chat", train_on_prompt=False)
    assert trained_text(tokenizer, example) == "First.<|end|>\nThird.<|end|>\n"


def test_train_on_prompt_puts_loss_on_every_token(tokenizer):
    example = tokenize_record(tokenizer, CHAT, "chat", train_on_prompt=True)
    assert example.labels == example.input_ids


@pytest.mark.parametrize("record, kind, prompt", [
    ({"instruction": "Add the numbers.", "input": "2 and 2", "output": "4"}, "instruction",
     "Add the numbers.\n\n2 and 2"),
    ({"instruction": "Name a colour.", "output": "4"}, "instruction", "Name a colour."),
    ({"prompt": "2+2=", "completion": "4"}, "prompt_completion", "2+2="),
])
def test_instruction_and_completion_records_become_a_user_and_an_assistant_turn(tokenizer, record, kind, prompt):
    example = tokenize_record(tokenizer, record, kind, train_on_prompt=False)
    assert tokenizer.decode(example.input_ids) == f"<|bos|><|user|>\n{prompt}<|end|>\n<|assistant|>\n4<|end|>\n"
    assert trained_text(tokenizer, example) == "4<|end|>\n"


def test_text_records_are_trained_whole_and_end_with_eos(tokenizer):
    example = tokenize_record(tokenizer, {"text": "Plain prose."}, "text", train_on_prompt=False)
    assert example.labels == example.input_ids
    assert example.input_ids[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize("template, expected", [
    (PHI_LIKE_TEMPLATE, "First.<|end|>\nSecond.<|end|>\n<|pad|>"),  # the conversation ends with an extra token
    (CHATML_TEMPLATE, "First.<|im_end|>\nSecond.<|im_end|>\n"),
])
def test_masking_holds_for_other_template_shapes(template, expected):
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = template
    example = tokenize_record(tokenizer, chat("One?", "First.", "Two?", "Second."), "chat", False)
    assert trained_text(tokenizer, example) == expected


def test_a_system_turn_joins_the_first_user_turn_when_the_template_refuses_it():
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = NO_SYSTEM_TEMPLATE
    example = tokenize_record(tokenizer, CHAT, "chat", train_on_prompt=False)
    assert "<|user|>\nBe brief.\n\nSay hi.<|end|>" in tokenizer.decode(example.input_ids)
    assert trained_text(tokenizer, example) == "Hi there!<|end|>\n"


def test_truncation_is_counted_and_examples_left_without_an_answer_are_dropped(tokenizer, tmp_path):
    records = [chat("Hi?", "A fairly long answer that goes on."), chat("x" * 60, "Lost."), chat("Short?", "Yes.")]
    hp = Hyperparameters(max_seq_length=40)
    examples, stats = prepare_file(write_jsonl(tmp_path / "train.jsonl", records), tokenizer, hp)
    assert (stats.records, stats.truncated, stats.dropped) == (3, 2, 1)
    assert len(examples[0]) == 40 and len(examples[1]) < 40
    assert trained_text(tokenizer, examples[0]) == "A fairly long answer that goes"


# The records' own problems are worded by trainer.records, as the Studio's dataset validator words them.
@pytest.mark.parametrize("lines, message", [
    (['{"text": "a"}', '{"prompt": "b", "completion": "c"}'], "train.jsonl line 2: this file holds text records"),
    (['{"question": "a"}'], "train.jsonl line 1: unknown record format (keys: question)"),
    (['{"messages": [{"role": "user"}]}'], "train.jsonl line 1: 'messages[0].content' is missing."),
    (['{"messages": [{"role": "user", "content": "Hi?"}]}'], "line 1: there is no assistant message to learn from."),
    (['{"instruction": "a", "output": 5}'], "train.jsonl line 1: 'output' must be a string, not a number."),
    (['{"instruction": "a"}'], "train.jsonl line 1: 'output' is missing."),
    (["[1, 2]"], "train.jsonl line 1: expected a JSON object"),
    ([], "train.jsonl has no records"),
])
def test_bad_records_are_reported_with_their_line(tokenizer, tmp_path, lines, message):
    (tmp_path / "train.jsonl").write_text("".join(line + "\n" for line in lines))
    with pytest.raises(DataError, match=re.escape(message)):
        prepare_file(tmp_path / "train.jsonl", tokenizer, Hyperparameters())


def test_the_validation_split_is_seeded_and_disjoint():
    examples = [Example([i], [i]) for i in range(50)]
    kept, held = split_validation(examples, 0.2, seed=5)
    assert len(held) == 10 and len(kept) == 40
    assert {e.input_ids[0] for e in kept}.isdisjoint({e.input_ids[0] for e in held})
    assert split_validation(examples, 0.2, seed=5)[1] == held
    assert split_validation(examples, 0.2, seed=6)[1] != held


def test_packing_keeps_examples_whole_and_restarts_positions():
    rng = random.Random(1)
    examples = [Example(list(range(100 * i, 100 * i + n)), list(range(100 * i, 100 * i + n)))
                for i, n in enumerate(rng.randint(3, 60) for _ in range(40))]
    packed = pack_examples(examples, capacity=64)
    assert all(len(sequence) <= 64 for sequence in packed)
    assert sum(map(len, examples)) / (64 * len(packed)) > 0.9
    pieces = []
    for sequence in packed:
        starts = [i for i, position in enumerate(sequence.position_ids) if position == 0]
        for start, end in zip(starts, [*starts[1:], len(sequence)], strict=True):
            pieces.append(sequence.input_ids[start:end])
            assert sequence.labels[start] == IGNORE_INDEX
            assert sequence.labels[start + 1:end] == sequence.input_ids[start + 1:end]
    assert sorted(pieces) == sorted(example.input_ids for example in examples)


def test_packed_sequences_compute_the_same_loss_as_separate_examples(tokenizer):
    model = build_tiny_model(tokenizer).eval()
    examples = [tokenize_record(tokenizer, chat(f"Question {i}?" * (i + 1), "Answer."), "chat", True)
                for i in range(5)]
    packed = pack_examples(examples, capacity=512)
    assert len(packed) == 1

    def summed_loss(batch: dict) -> float:
        """The loss summed over the batch's target tokens."""
        with torch.no_grad():  # num_items_in_batch=1 makes the loss a plain sum
            return float(model(**batch, num_items_in_batch=1, use_cache=False).loss)

    separate = sum(summed_loss(collate([example], tokenizer.pad_token_id)) for example in examples)
    assert summed_loss(collate(packed, tokenizer.pad_token_id)) == pytest.approx(separate, rel=1e-4)


def test_length_grouped_batches_pad_less_and_still_cover_every_example_once():
    lengths = [random.Random(i).randint(5, 500) for i in range(400)]

    def padded_slots(batches: list[list[int]]) -> int:
        """Token slots the batches take once padded."""
        return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)

    grouped = epoch_batches(lengths, batch_size=8, seed=3, grouped=True)
    plain = epoch_batches(lengths, batch_size=8, seed=3, grouped=False)
    for batches in (grouped, plain):
        assert sorted(i for batch in batches for i in batch) == list(range(400))
        assert max(lengths[i] for i in batches[0]) == max(lengths)  # out of memory shows in the first step
    assert padded_slots(grouped) < 0.7 * padded_slots(plain)
    assert epoch_batches(lengths, 8, 3, True) == grouped != epoch_batches(lengths, 8, 4, True)


def test_the_plan_maps_each_step_to_its_micro_batches():
    plan = Plan([10] * 10, Hyperparameters(batch_size=3, gradient_accumulation_steps=2, epochs=2,
                                                       group_by_length=False))
    assert (plan.batches_per_epoch, plan.steps_per_epoch, plan.total_steps) == (4, 2, 4)
    first_epoch = plan.micro_batches(0) + plan.micro_batches(1)
    assert [len(batch) for batch in first_epoch] == [3, 3, 3, 1]
    assert collections.Counter(i for batch in first_epoch for i in batch) == collections.Counter(range(10))
    assert plan.micro_batches(2) != plan.micro_batches(0)  # a new shuffle each epoch
    assert plan.epoch_at(3) == 1.5
