"""The environment a training subprocess gets: what it needs to run and find its GPU and caches, no secret."""
from __future__ import annotations

import os

# Named variables the training program (Python, torch, transformers, the Hugging Face hub) reads.
ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "LD_LIBRARY_PATH",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "PYTHONHASHSEED", "TOKENIZERS_PARALLELISM", "PYTORCH_CUDA_ALLOC_CONF", "XDG_CACHE_HOME",
})
# Families of variables: locale, GPU selection, thread counts, model caches, the hub's own token, and the
# training program's own TRAINER_* switches.
ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH_", "OMP_", "MKL_",
                    "OPENBLAS_", "ACCELERATE_", "TRAINER_")


def training_environment(source: dict[str, str] | None = None) -> dict[str, str]:
    """The allowlisted part of source (this process's environment), unbuffered so progress lines arrive at once.

    An allowlist, not a denylist: the worker's environment holds SECRET_KEY, the database, Redis, storage and
    Kaggle credentials, and any name added later would otherwise leak into a program that runs user-chosen
    models and data.
    """
    source = os.environ if source is None else source
    allowed = {name: value for name, value in source.items()
               if name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)}
    return {**allowed, "PYTHONUNBUFFERED": "1"}
