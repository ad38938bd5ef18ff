"""Judging what a job learnt: how close answers come to their references, and a run the tiny model learns from."""
from __future__ import annotations

import difflib
import hashlib
import io
import json
import zipfile

# Enough steps on the learnable chats (tests.support.data.learnable_chats) for the answers to be exact.
LEARNABLE = {"max_steps": 60, "learning_rate": 0.01, "batch_size": 8, "gradient_accumulation_steps": 2,
             "max_seq_length": 64, "warmup_ratio": 0.05, "lora_r": 8, "lora_alpha": 16, "logging_steps": 5,
             "eval_steps": 20, "save_steps": 10, "seed": 3}


def similarity(answer: str | None, reference: str) -> float:
    """How close an answer is to its reference, 0 to 1."""
    return difflib.SequenceMatcher(None, answer or "", reference).ratio()


def mean_similarity(samples: list[dict], side: str) -> float:
    """The mean closeness of one side's answers (base or tuned) to the references."""
    return sum(similarity(s[side], s["reference"]) for s in samples) / len(samples)


def zip_digests(data: bytes) -> dict[str, str]:
    """The SHA-256 of each member of a zip archive, by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}


def stored_samples(store, job, samples: list[dict]):
    """samples.jsonl of job in the store, with its artifact row (as the collect step leaves it)."""
    from app.models import Artifact

    data = "".join(json.dumps(sample) + "\n" for sample in samples).encode()
    key = f"jobs/{job.id}/artifacts/samples.jsonl"
    store.put(key, io.BytesIO(data), len(data))
    return Artifact.create(job=job, name="samples.jsonl", object_key=key, size_bytes=len(data),
                           sha256=hashlib.sha256(data).hexdigest())


def sample(prompt: str, tuned: str, base: str = "zzz", reference: str | None = None) -> dict:
    """One line of samples.jsonl."""
    return {"messages": [{"role": "user", "content": prompt}], "reference": reference, "base": base,
            "tuned": tuned, "base_tokens": 3, "tuned_tokens": 2, "base_seconds": 0.1, "tuned_seconds": 0.1}
