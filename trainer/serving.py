"""Serving a trained result: the base model plus adapter loaded once and kept warm, answers streamed token by token.

The playground's worker (workers/tasks.py) uses it; the training program itself never does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import peft
import torch
import transformers
from transformers.generation.streamers import BaseStreamer

from trainer.config import TINY_MODEL_ID
from trainer.data import render_chat
from trainer.models import build_tiny_model, load_tokenizer


class CallbackStreamer(BaseStreamer):
    """Hands the answer so far to on_text after each new token (generate() first puts the prompt: skipped)."""

    def __init__(self, tokenizer, on_text):
        """Stream to on_text(text_so_far, tokens_so_far)."""
        self.tokenizer, self.on_text, self.ids, self.prompt_seen = tokenizer, on_text, [], False

    def put(self, value) -> None:
        """One step's new token ids."""
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.ids.extend(value.reshape(-1).tolist())
        self.on_text(self.text(), len(self.ids))

    def end(self) -> None:
        """Generation is over: nothing more to hand on."""

    def text(self) -> str:
        """The answer so far, special tokens dropped."""
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)


@dataclass
class Loaded:
    """A model ready to answer: its tokenizer, its device, whether an adapter can be switched off, last use."""

    model: object
    tokenizer: object
    device: object
    has_adapter: bool
    last_used: float


def load(base_model: str, folder: Path, has_adapter: bool) -> Loaded:
    """The base model with the adapter in folder (or, for a full fine-tune, the model in folder), in eval mode."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda:0" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    tokenizer = load_tokenizer(base_model)
    if base_model == TINY_MODEL_ID and not cuda:
        torch.set_num_threads(1)  # as in training (trainer/models.py): its tiny kernels only wait on each other
    if not has_adapter:
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    else:
        if base_model == TINY_MODEL_ID:
            base = build_tiny_model(tokenizer).to(dtype)
        else:
            base = transformers.AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
        model = peft.PeftModel.from_pretrained(base, folder)
    return Loaded(model.to(device).eval(), tokenizer, device, has_adapter, time.monotonic())


def complete(loaded: Loaded, messages: list[dict], max_tokens: int, temperature: float, adapter: bool,
             on_text) -> tuple[str, int]:
    """Answer the conversation, streaming the text to on_text; (answer, tokens). adapter False: the base model."""
    tokenizer = loaded.tokenizer
    prompt = render_chat(tokenizer, messages, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(loaded.device)
    streamer = CallbackStreamer(tokenizer, on_text)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    options = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens, streamer=streamer,
                   pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, use_cache=True,
                   **sampling)
    with torch.no_grad():
        if adapter or not loaded.has_adapter:
            loaded.model.generate(**options)
        else:
            with loaded.model.disable_adapter():
                loaded.model.generate(**options)
    loaded.last_used = time.monotonic()
    return streamer.text().strip(), len(streamer.ids)


class WarmModels:
    """The models this process keeps loaded, by key, each dropped once unused for keep_seconds (one at a time)."""

    def __init__(self, keep_seconds: float):
        """Keep each model this long after its last use."""
        self.keep_seconds, self.loaded = keep_seconds, {}

    def get(self, key, base_model: str, folder: Path, has_adapter: bool) -> tuple[Loaded, bool]:
        """The loaded model for key, loading it when needed; (model, whether it was loaded now)."""
        now = time.monotonic()
        for other in [k for k, v in self.loaded.items() if k != key or now - v.last_used > self.keep_seconds]:
            del self.loaded[other]  # one model in memory at a time: a worker's memory holds one
        if key in self.loaded:
            return self.loaded[key], False
        self.loaded[key] = load(base_model, folder, has_adapter)
        return self.loaded[key], True


def free_memory_bytes() -> int:
    """The memory a model could load into: the GPU's free memory, else the host's available memory."""
    if torch.cuda.is_available():
        return torch.cuda.mem_get_info()[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def bytes_per_parameter() -> int:
    """How many bytes a weight takes when served here: fp16 on a GPU, fp32 on a CPU."""
    return 2 if torch.cuda.is_available() else 4
