"""Export that keeps behaviour: the adapter merged into the base as safetensors, and an Ollama Modelfile whose
template, stop tokens and system prompt come from the tokenizer; both checked against the adapter model.

The Modelfile's TEMPLATE is derived by rendering the tokenizer's chat template around marker contents, so it is
written in the small subset of Go's text/template that `render_modelfile_template` also renders: the check
renders the written template, not the pieces it was made from.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import torch

from trainer.data import render_chat

MARKS = ("\x00SYSTEM\x00", "\x00USER\x00", "\x00ASSISTANT\x00")
CHECK_TOKENS = 32
ROLES = ("system", "user", "assistant")


class ExportMismatch(Exception):
    """The export would answer differently from the adapter; names the first differing prompt."""


def cut(text: str, before: str, mark: str) -> tuple[str, str]:
    """(what lies between before and mark, what follows mark) in text, which must start with before."""
    if not text.startswith(before) or mark not in text:
        raise ExportMismatch("The chat template does not render each message as prefix + content + suffix.")
    middle, _, rest = text[len(before):].partition(mark)
    return middle, rest


def template_parts(tokenizer) -> dict:
    """Each role's prefix and suffix, the text before the first message and the generation prompt."""
    system, user, assistant = MARKS
    only_user = render_chat(tokenizer, [{"role": "user", "content": user}])
    with_system = render_chat(tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": user}])
    # What precedes every conversation: the BOS token when the template writes one (role markers that merely
    # start alike, like "<|system|>" and "<|user|>", are no shared head).
    bos = tokenizer.bos_token or ""
    head = bos if bos and only_user.startswith(bos) and with_system.startswith(bos) else ""
    user_prefix, user_suffix = cut(only_user, head, user)
    system_prefix, after_system = cut(with_system, head, system)
    system_suffix = after_system[:len(after_system) - len(user_prefix + user + user_suffix)]
    turn = render_chat(tokenizer, [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}])
    assistant_prefix, assistant_suffix = cut(turn, head + user_prefix + user + user_suffix, assistant)
    prompt = render_chat(tokenizer, [{"role": "user", "content": user}], add_generation_prompt=True)
    return {"head": head, "generation": prompt[len(only_user):],
            "system": (system_prefix, system_suffix), "user": (user_prefix, user_suffix),
            "assistant": (assistant_prefix, assistant_suffix)}


def go_template(parts: dict) -> str:
    """The Ollama TEMPLATE: the head, each message by its role, and the generation prompt."""
    branches = "".join(
        f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}{parts[role][0]}{{{{ .Content }}}}{parts[role][1]}'
        for i, role in enumerate(ROLES))
    return f"{parts['head']}{{{{ range .Messages }}}}{branches}{{{{ end }}}}{{{{ end }}}}{parts['generation']}"


def stop_tokens(tokenizer, parts: dict) -> list[str]:
    """The end-of-sequence token and every special token that closes an assistant turn."""
    closing = parts["assistant"][1]
    found = [token for token in tokenizer.all_special_tokens if token and token in closing]
    return list(dict.fromkeys([*([tokenizer.eos_token] if tokenizer.eos_token else []), *found]))


def modelfile(tokenizer, system: str | None = None) -> str:
    """An Ollama Modelfile for the merged model in the same folder."""
    parts = template_parts(tokenizer)
    lines = ["FROM .", f'TEMPLATE """{go_template(parts)}"""']
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens(tokenizer, parts)]
    if system:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


TOKEN = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)


def render_modelfile_template(template: str, messages: list[dict]) -> str:
    """Render the subset of Go templates that go_template writes: range .Messages, if/else if eq .Role, .Content."""
    pieces = TOKEN.split(template)  # literal, action, literal, action, ..., literal
    if "range .Messages" not in pieces:
        raise ExportMismatch("The Modelfile template does not range over .Messages.")
    start = pieces.index("range .Messages")
    stop = len(pieces) - 1 - pieces[::-1].index("end")
    if any(position % 2 for position in range(start)) or len(pieces) - stop > 2:
        raise ExportMismatch("The Modelfile template has actions outside its range over .Messages.")
    loop = pieces[start + 1:stop]
    return "".join(pieces[:start]) + "".join(_render_message(loop, m) for m in messages) + pieces[-1]


def _render_message(loop: list[str], message: dict) -> str:
    """One pass of the range body for a message: the branch whose role matches."""
    chosen, taking = [], False
    for position, piece in enumerate(loop):
        if position % 2 == 0:
            chosen += [piece] if taking else []
        elif found := re.fullmatch(r'(?:else )?if eq \.Role "(\w+)"', piece):
            taking = found.group(1) == message["role"]
        elif piece == "end":
            taking = False
        elif piece == ".Content":
            chosen += [message["content"]] if taking else []
        else:
            raise ExportMismatch(f"The Modelfile template has an action this check cannot render: {piece!r}.")
    return "".join(chosen)


def template_of(modelfile_text: str) -> str:
    """The TEMPLATE of a Modelfile."""
    found = re.search(r'TEMPLATE """(.*?)"""', modelfile_text, re.S)
    if not found:
        raise ExportMismatch("The Modelfile has no TEMPLATE.")
    return found.group(1)


def check_template(modelfile_text: str, tokenizer, conversations: list[list[dict]]) -> None:
    """The Modelfile's template renders each conversation as the tokenizer's chat template does, followed by the
    generation prompt (Ollama always renders a prompt to answer)."""
    template, generation = template_of(modelfile_text), template_parts(tokenizer)["generation"]
    for index, messages in enumerate(conversations):
        expected = render_chat(tokenizer, messages, add_generation_prompt=True)
        if messages[-1]["role"] == "assistant":
            expected = render_chat(tokenizer, messages) + generation
        if render_modelfile_template(template, messages) != expected:
            raise ExportMismatch(f"The Modelfile template renders prompt {index} ({messages[-1]['content'][:60]!r}) "
                                 "differently from the tokenizer's chat template.")


def greedy_ids(model, tokenizer, messages: list[dict]) -> list[int]:
    """The first CHECK_TOKENS greedy token ids a model answers a conversation with."""
    ids = tokenizer(render_chat(tokenizer, messages, add_generation_prompt=True), add_special_tokens=False,
                    return_tensors="pt")["input_ids"]
    with torch.no_grad():
        output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=CHECK_TOKENS,
                                do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=tokenizer.eos_token_id)
    return output[0, ids.shape[1]:].tolist()


def check_merged(adapted, merged, tokenizer, prompts: list[list[dict]]) -> None:
    """The merged model answers every prompt greedily with the same tokens as base + adapter."""
    for index, messages in enumerate(prompts):
        if greedy_ids(adapted, tokenizer, messages) != greedy_ids(merged, tokenizer, messages):
            raise ExportMismatch(f"The merged model answers prompt {index} ({messages[-1]['content'][:60]!r}) "
                                 "differently from the adapter model.")


def export(adapted, tokenizer, prompts: list[list[dict]], conversations: list[list[dict]], out: Path,
           with_modelfile: bool) -> list[str]:
    """Merge, check, save into out (merged safetensors + tokenizer, and the Modelfile); the files' names."""
    merged = copy.deepcopy(adapted).merge_and_unload()  # a copy: the adapter model is compared against it
    check_merged(adapted, merged, tokenizer, prompts)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if with_modelfile:
        text = modelfile(tokenizer)
        check_template(text, tokenizer, conversations)
        (out / "Modelfile").write_text(text)
    return sorted(p.name for p in out.iterdir())

