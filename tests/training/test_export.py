"""The export's self-checks: the Modelfile template renders like the tokenizer, the merged model answers like
the adapter; a broken template fails naming the first differing prompt."""
from __future__ import annotations

import peft
import pytest
import torch

from trainer import export
from trainer.models import build_tiny_model, build_tiny_tokenizer

PROMPTS = [[{"role": "user", "content": "Please greet the comet."}],
           [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count for the moon."}]]
CONVERSATIONS = [*PROMPTS, [*PROMPTS[1], {"role": "assistant", "content": "One, two, three."}]]


def adapted_model(tokenizer):
    """The tiny model with a LoRA adapter of random weights (so merging changes the answers)."""
    model = peft.get_peft_model(build_tiny_model(tokenizer), peft.LoraConfig(r=4, target_modules=["q_proj"]))
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(3)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    return model.eval()


def test_export_writes_merged_safetensors_and_a_modelfile_that_pass_the_checks(tmp_path):
    tokenizer = build_tiny_tokenizer()
    names = export.export(adapted_model(tokenizer), tokenizer, PROMPTS, CONVERSATIONS, tmp_path, True)
    assert {"model.safetensors", "config.json", "tokenizer.json", "Modelfile"} <= set(names)
    text = (tmp_path / "Modelfile").read_text()
    assert text.startswith("FROM .\n") and 'PARAMETER stop "<|end|>"' in text
    assert '{{ if eq .Role "system" }}<|system|>\n{{ .Content }}<|end|>\n' in text


def test_a_broken_modelfile_template_fails_naming_the_first_differing_prompt():
    tokenizer = build_tiny_tokenizer()
    broken = export.modelfile(tokenizer).replace('"system" }}<|system|>\n', '"system" }}<|system|>')
    export.check_template(broken, tokenizer, PROMPTS[:1])  # no system message: still the same
    with pytest.raises(export.ExportMismatch, match=r"prompt 1 \('Count for the moon.'\)"):
        export.check_template(broken, tokenizer, CONVERSATIONS)


def test_a_chat_template_the_modelfile_cannot_express_fails_the_export(tmp_path):
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "{{ message['content'] }}", "{% if loop.index > 2 %}(later) {% endif %}{{ message['content'] }}")
    with pytest.raises(export.ExportMismatch, match=r"prompt 2 .*differently from the tokenizer"):
        export.export(adapted_model(tokenizer), tokenizer, PROMPTS, CONVERSATIONS, tmp_path, True)
