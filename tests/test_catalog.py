"""The model catalog, its GPU memory estimate checked against published measurements, and GET /api/v1/models."""
from __future__ import annotations

import peft
import pytest
import torch
import transformers

from app import catalog
from trainer.config import Hyperparameters
from trainer.models import lora_targets

ISSUE_MODELS = {
    "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct",
    "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct", "google/gemma-2-2b-it", "microsoft/Phi-3.5-mini-instruct",
}

MODEL_TYPES = {"smollm2-360m-instruct": "llama", "qwen2.5-0.5b-instruct": "qwen2", "llama-3.2-1b-instruct": "llama",
               "qwen2.5-1.5b-instruct": "qwen2", "smollm2-1.7b-instruct": "llama", "gemma-2-2b-it": "gemma2",
               "qwen2.5-3b-instruct": "qwen2", "llama-3.2-3b-instruct": "llama", "phi-3.5-mini-instruct": "phi3",
               "tiny-random-llama": "llama"}

# Peak memory (torch.cuda.max_memory_allocated) measured by others for catalog models, with the run's settings.
# LitGPT runs: bf16, no activation checkpointing, Alpaca 2k, max_seq_length 512; figures from the table in
# https://github.com/Lightning-AI/litgpt/blob/main/config_hub/finetune/README.md and the LoRA settings from the
# config files beside it (llama-3.2-1B/lora.yaml, llama-3.2-3B/lora.yaml: r=32 on query and value, dropout 0.05;
# phi-3/lora.yaml: r=8 on every projection, dropout 0.05). Phi-3-mini-4k has Phi-3.5-mini's architecture.
# PEFT's method comparison: meta-llama/Llama-3.2-3B, bf16, LoRA r=32 on q_proj and v_proj without dropout, batch 4,
# max_seq_length 768, no checkpointing: "cuda_memory_max": 22273851392 in
# https://github.com/huggingface/peft/blob/main/method_comparison/MetaMathQA/results/lora--llama-3.2-3B-rank32.json
PUBLISHED_PEAKS = [
    pytest.param("llama-3.2-1b-instruct", 512, 1, dict(lora_r=32, lora_targets=("q", "v")), 4.49,
                 id="LitGPT Llama 3.2 1B LoRA: 4.49 GB"),
    pytest.param("llama-3.2-3b-instruct", 512, 1, dict(lora_r=32, lora_targets=("q", "v")), 9.67,
                 id="LitGPT Llama 3.2 3B LoRA: 9.67 GB"),
    pytest.param("phi-3.5-mini-instruct", 512, 4, dict(lora_r=8), 19.75, id="LitGPT Phi-3 mini LoRA: 19.75 GB"),
    pytest.param("llama-3.2-3b-instruct", 768, 4, dict(lora_r=32, lora_targets=("q", "v"), lora_dropout=0.0), 22.27,
                 id="PEFT Llama 3.2 3B LoRA: 22.27 GB"),
]


def test_the_catalog_offers_the_models_of_the_issue_and_the_tiny_demo_model():
    assert {entry.hub_id for entry in catalog.CATALOG if not entry.demo} == ISSUE_MODELS
    tiny = catalog.get_entry("tiny-random-llama")
    assert tiny.demo and tiny.source == "builtin" and tiny.url is None
    assert [entry.id for entry in catalog.CATALOG if entry.gated] == ["llama-3.2-1b-instruct", "gemma-2-2b-it",
                                                                       "llama-3.2-3b-instruct"]


@pytest.mark.parametrize("entry", catalog.CATALOG, ids=lambda entry: entry.id)
def test_each_architecture_accounts_for_the_stated_parameter_count(entry):
    shape = entry.architecture
    counted = shape.embedding_parameters() + shape.linear_parameters()
    assert 0 <= entry.parameters - counted < 0.005 * entry.parameters  # the rest: norms and biases


@pytest.mark.parametrize("entry", catalog.CATALOG, ids=lambda entry: entry.id)
def test_each_shape_builds_the_real_architecture_with_the_stated_parameters(entry):
    shape = entry.architecture
    config = transformers.AutoConfig.for_model(
        MODEL_TYPES[entry.id], vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim, tie_word_embeddings=shape.tied_embeddings)
    with torch.device("meta"):  # shapes only: no memory, no download
        model = transformers.AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == entry.parameters
    # The LoRA the training program applies trains exactly the parameters the estimate counts.
    targets = lora_targets(Hyperparameters(lora_r=16), config.model_type)
    adapted = peft.get_peft_model(model, peft.LoraConfig(r=16, target_modules=targets, task_type="CAUSAL_LM"))
    trained = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    assert trained == catalog.estimate_memory(entry, "lora", 512, 1, lora_r=16).trainable_parameters


@pytest.mark.parametrize("model_id, max_seq_length, batch_size, lora, published_gb", PUBLISHED_PEAKS)
def test_lora_estimates_match_published_peak_memory(model_id, max_seq_length, batch_size, lora, published_gb):
    estimate = catalog.estimate_memory(model_id, "lora", max_seq_length, batch_size, gradient_checkpointing=False,
                                       **lora)
    assert estimate.peak_allocated_gb == pytest.approx(published_gb, rel=0.15)


@pytest.mark.parametrize("model_id, published_gb", [
    ("qwen2.5-0.5b-instruct", 0.988),  # model.safetensors, 988 MB: https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct
    ("llama-3.2-1b-instruct", 2.47),  # model.safetensors, 2.47 GB: https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct
])
def test_lora_weights_are_the_published_16_bit_checkpoint_size(model_id, published_gb):
    assert catalog.estimate_memory(model_id, "lora", 512, 1).weights_gb == pytest.approx(published_gb, rel=0.01)


@pytest.mark.parametrize("entry", [e for e in catalog.CATALOG if not e.demo], ids=lambda entry: entry.id)
def test_methods_order_as_expected_for_every_model(entry):
    lora, qlora, full = (catalog.estimate_memory(entry, method, 1024, 4) for method in catalog.ADAPTERS)
    assert qlora.weights_gb < 0.8 * lora.weights_gb  # not 0.25: peft keeps the embeddings in fp32
    assert full.weights_gb + full.trainable_gb > 5 * (lora.weights_gb + lora.trainable_gb)
    assert full.trainable_parameters == entry.parameters > 20 * lora.trainable_parameters


def test_longer_sequences_and_bigger_batches_need_more_and_checkpointing_less():
    base = catalog.estimate_memory("qwen2.5-1.5b-instruct", "lora", 1024, 4)
    assert catalog.estimate_memory("qwen2.5-1.5b-instruct", "lora", 2048, 4).activations_gb > base.activations_gb
    assert catalog.estimate_memory("qwen2.5-1.5b-instruct", "lora", 1024, 8).activations_gb > base.activations_gb
    unchecked = catalog.estimate_memory("qwen2.5-1.5b-instruct", "lora", 1024, 4, gradient_checkpointing=False)
    assert unchecked.activations_gb > 2 * base.activations_gb
    assert base.weights_gb == unchecked.weights_gb and base.trainable_gb == unchecked.trainable_gb


def test_fits_compares_the_total_with_the_gpu():
    small = catalog.estimate_memory("qwen2.5-0.5b-instruct", "lora", 512, 2)
    big = catalog.estimate_memory("llama-3.2-3b-instruct", "full", 512, 2)
    assert catalog.fits(small) and not catalog.fits(big)
    assert catalog.fits(big, gpu_gb=big.total_gb) and not catalog.fits(small, gpu_gb=small.total_gb - 0.01)
    assert small.total_gb == pytest.approx(small.peak_allocated_gb + small.overhead_gb)


def test_models_are_found_by_catalog_id_or_hub_id_and_unknown_ones_refused():
    assert catalog.get_entry("Qwen/Qwen2.5-3B-Instruct") is catalog.get_entry("qwen2.5-3b-instruct")
    with pytest.raises(catalog.UnknownModel):
        catalog.estimate_memory("gpt-5", "lora", 512, 1)
    with pytest.raises(ValueError, match="method must be one of"):
        catalog.estimate_memory("qwen2.5-3b-instruct", "dpo", 512, 1)


@pytest.fixture
def headers(make_user, make_token):
    """Bearer headers of a user."""
    return {"Authorization": f"Bearer {make_token(make_user())}"}


def test_models_api_needs_a_token(client):
    assert client.get("/api/v1/models").status_code == 401


def test_models_api_lists_the_catalog_with_an_estimate_per_method(client, headers):
    body = client.get("/api/v1/models", headers=headers).get_json()
    assert body["meta"] == {"max_seq_length": 1024, "batch_size": 4, "gradient_checkpointing": True, "gpu_gb": 16}
    assert [model["id"] for model in body["data"]] == [entry.id for entry in catalog.CATALOG]
    qwen = next(model for model in body["data"] if model["id"] == "qwen2.5-0.5b-instruct")
    assert qwen["hub_id"] == "Qwen/Qwen2.5-0.5B-Instruct" and qwen["gated"] is False
    expected = catalog.estimate_memory("qwen2.5-0.5b-instruct", "qlora", 1024, 4)
    assert qwen["memory"]["qlora"] == {**expected.breakdown(), "fits_t4": catalog.fits(expected)}


def test_models_api_estimates_for_the_requested_sequence_length_and_batch(client, headers):
    short = client.get("/api/v1/models?max_seq_length=256&batch_size=1", headers=headers).get_json()
    long = client.get("/api/v1/models?max_seq_length=4096&batch_size=8", headers=headers).get_json()
    assert short["meta"]["max_seq_length"] == 256 and long["meta"]["batch_size"] == 8
    gemma_short, gemma_long = (next(m for m in r["data"] if m["id"] == "gemma-2-2b-it") for r in (short, long))
    assert gemma_short["memory"]["lora"]["fits_t4"] and not gemma_long["memory"]["lora"]["fits_t4"]


@pytest.mark.parametrize("query, field", [
    ("max_seq_length=abc", "max_seq_length"), ("max_seq_length=8", "max_seq_length"),
    ("batch_size=0", "batch_size"), ("batch_size=1000", "batch_size"),
])
def test_models_api_refuses_bad_arguments_naming_them(client, headers, query, field):
    response = client.get(f"/api/v1/models?{query}", headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["field"] == field
