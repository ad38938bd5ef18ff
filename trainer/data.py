"""Datasets: JSONL records → chat messages → token ids with loss labels; truncation, packing, split, batches."""
from __future__ import annotations

import bisect
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import jinja2
import torch

from trainer import records
from trainer.config import Config, Hyperparameters
from trainer.errors import DataError

IGNORE_INDEX = -100


@dataclass
class Example:
    """One training sequence: token ids, labels (-100 where no loss is taken) and, when packed, positions."""

    input_ids: list
    labels: list
    position_ids: list | None = None

    def __len__(self) -> int:
        """The number of tokens."""
        return len(self.input_ids)


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) for each non-blank line of a JSONL file; DataError names a bad line."""
    if not path.is_file():
        raise DataError(f"Dataset file {path.name} is missing from the data folder.")
    found = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise DataError(f"{path.name} line {number}: not valid JSON ({error.msg}).") from error
            if not isinstance(record, dict):
                raise DataError(f"{path.name} line {number}: expected a JSON object.")
            found.append((number, record))
    return found


def check_record(record: dict, record_format: str, where: str) -> None:
    """Raise DataError unless the record is a valid record of the file's format, as the Studio's validator says."""
    if records.detect(record) != record_format:
        raise DataError(f"{where}: this file holds {record_format} records, but this line does not.")
    found = records.problems(record, record_format)
    if found:
        raise DataError(f"{where}: {found[0][1]}.")


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The conversation as the model's chat template writes it."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    try:
        return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt)
    except jinja2.TemplateError:
        if not plain or plain[0]["role"] != "system" or len(plain) < 2:
            raise
    # Some templates (Gemma's) refuse a system turn: fold it into the first user turn instead.
    merged = {"role": plain[1]["role"], "content": plain[0]["content"] + "\n\n" + plain[1]["content"]}
    return tokenizer.apply_chat_template([merged, *plain[2:]], tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def common_prefix_length(a: str, b: str) -> int:
    """How many leading characters a and b share."""
    return len(os.path.commonprefix([a, b]))


def trained_spans(tokenizer, messages: list[dict], text: str) -> list[tuple[int, int]]:
    """Character spans of text that carry loss: each assistant turn (weight 1) with its end-of-turn marker."""
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or not message.get("weight", 1):
            continue
        # Render the history with the assistant header, then with the turn itself: the difference is the answer.
        # Compare prefixes rather than lengths: some templates end a conversation differently (Phi adds eos), and
        # a shared start of two different tokens is no token of the answer (see tokenize_with_spans).
        before = render_chat(tokenizer, messages[:index], add_generation_prompt=True) if index else ""
        through = render_chat(tokenizer, messages[:index + 1])
        spans.append((common_prefix_length(text, before), common_prefix_length(text, through)))
    return spans


def tokenize_with_spans(tokenizer, text: str, spans: list[tuple[int, int]]) -> Example:
    """Tokenize text; a token is trained when it lies wholly inside one of the character spans."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in spans]
    labels = []
    for token, (begin, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
        span = bisect.bisect_right(starts, begin) - 1
        labels.append(token if span >= 0 and end <= spans[span][1] else IGNORE_INDEX)
    return Example(input_ids=list(encoded["input_ids"]), labels=labels)


def tokenize_record(tokenizer, record: dict, record_format: str, train_on_prompt: bool) -> Example:
    """One record as token ids and labels, before truncation."""
    if record_format == "text":
        ids = tokenizer(record["text"])["input_ids"]
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids = [*ids, tokenizer.eos_token_id]
        return Example(input_ids=ids, labels=list(ids))
    messages = records.to_messages(record, record_format)
    text = render_chat(tokenizer, messages)
    spans = [(0, len(text))] if train_on_prompt else trained_spans(tokenizer, messages, text)
    return tokenize_with_spans(tokenizer, text, spans)


def truncate(example: Example, max_length: int) -> tuple[Example, bool]:
    """The example cut to max_length tokens, and whether it was cut."""
    if len(example) <= max_length:
        return example, False
    return Example(example.input_ids[:max_length], example.labels[:max_length]), True


@dataclass
class DatasetStats:
    """What preparing a dataset file found."""

    format: str = ""
    records: int = 0
    truncated: int = 0
    dropped: int = 0


def file_format(path: Path, first: tuple[int, dict]) -> str:
    """The record format of a file, from its first record; DataError when it fits none."""
    number, record = first
    found = records.detect(record)
    if found is None:
        raise DataError(f"{path.name} line {number}: unknown record format (keys: {', '.join(sorted(record))}); "
                        f"expected {records.EXPECTED}.")
    return found


def prepare_file(path: Path, tokenizer, hp: Hyperparameters) -> tuple[list[Example], DatasetStats]:
    """Read, check and tokenize one JSONL file; examples left with no trained token are dropped and counted."""
    numbered = read_jsonl(path)
    if not numbered:
        raise DataError(f"Dataset file {path.name} has no records.")
    record_format = file_format(path, numbered[0])
    if record_format in records.PAIR_FORMATS:
        raise DataError(f"{path.name} holds preference pairs, which supervised fine-tuning cannot learn from; "
                        "use method dpo or orpo.")
    stats, examples = DatasetStats(format=record_format, records=len(numbered)), []
    for number, record in numbered:
        check_record(record, record_format, f"{path.name} line {number}")
        example = tokenize_record(tokenizer, record, record_format, hp.train_on_prompt)
        example, was_cut = truncate(example, hp.max_seq_length)
        stats.truncated += was_cut
        if all(label == IGNORE_INDEX for label in example.labels[1:]):
            stats.dropped += 1
            continue
        examples.append(example)
    return examples, stats


def shuffled(items: list, seed: int) -> list:
    """A copy of items in a seeded random order."""
    order = list(items)
    random.Random(seed).shuffle(order)  # noqa: S311  (reproducible data order, not secrecy)
    return order


def split_validation(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation): a seeded random fraction held out, at least one example when fraction > 0."""
    if fraction <= 0 or len(examples) < 2:
        return examples, []
    held = max(1, round(len(examples) * fraction))
    chosen = set(shuffled(range(len(examples)), seed)[:held])
    return ([e for i, e in enumerate(examples) if i not in chosen], [e for i, e in enumerate(examples) if i in chosen])


def pack_examples(examples: list[Example], capacity: int) -> list[Example]:
    """Whole examples packed best-fit-decreasing into sequences of at most capacity tokens.

    Positions restart at 0 for each example, which tells the attention not to look across examples, and the
    first label of each example is dropped: it would be predicted from the previous example's last token.
    """
    bins: list[list[Example]] = []
    free: list[tuple[int, int]] = []  # (room left, bin index), sorted, for a best-fit search
    for example in sorted(examples, key=len, reverse=True):
        slot = bisect.bisect_left(free, (len(example), -1))
        if slot == len(free):
            bins.append([])
            room, index = capacity, len(bins) - 1
        else:
            room, index = free.pop(slot)
        bins[index].append(example)
        if room - len(example) > 0:
            bisect.insort(free, (room - len(example), index))
    return [join_examples(members) for members in bins]


def join_examples(members: list[Example]) -> Example:
    """Several examples as one packed sequence."""
    packed = Example(input_ids=[], labels=[], position_ids=[])
    for example in members:
        packed.input_ids += example.input_ids
        packed.labels += [IGNORE_INDEX, *example.labels[1:]]
        packed.position_ids += list(range(len(example)))
    return packed


def load_datasets(data_dir: Path, config: Config, tokenizer) -> tuple[list[Example], list[Example], dict]:
    """Training and validation examples (packed when asked) and statistics for the start event."""
    hp = config.hyperparameters
    train, train_stats = prepare_file(data_dir / config.train_file, tokenizer, hp)
    if config.validation_file:
        validation, validation_stats = prepare_file(data_dir / config.validation_file, tokenizer, hp)
    else:
        train, validation = split_validation(train, hp.validation_split, hp.seed)
        validation_stats = None
    if not train:
        raise DataError(f"No training example left in {config.train_file}: every example lost its answer "
                        "to truncation or has no assistant turn (raise max_seq_length or set train_on_prompt).")
    stats = {"format": train_stats.format, "train_examples": len(train), "eval_examples": len(validation),
             "truncated_examples": train_stats.truncated + (validation_stats.truncated if validation_stats else 0),
             "dropped_examples": train_stats.dropped + (validation_stats.dropped if validation_stats else 0)}
    if hp.packing:
        train = pack_examples(train, hp.max_seq_length)
        stats["packed_sequences"] = len(train)
    return train, validation, stats


def collate(examples: list[Example], pad_id: int, pad_to_multiple: int = 1) -> dict:
    """A batch of tensors, right-padded; packed batches carry positions and no mask (so packing is detected)."""
    width = max(map(len, examples))
    width = -(-width // pad_to_multiple) * pad_to_multiple
    ids, labels, extra = [], [], []
    for example in examples:
        pad = width - len(example)
        ids.append(example.input_ids + [pad_id] * pad)
        labels.append(example.labels + [IGNORE_INDEX] * pad)
        if example.position_ids is None:
            extra.append([1] * len(example) + [0] * pad)
        else:  # padding becomes one more packed sequence, attended by nothing real
            extra.append(example.position_ids + list(range(pad)))
    key = "attention_mask" if examples[0].position_ids is None else "position_ids"
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), key: torch.tensor(extra)}


def count_targets(batch: dict) -> int:
    """How many tokens of the batch carry loss (the model shifts labels by one)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
