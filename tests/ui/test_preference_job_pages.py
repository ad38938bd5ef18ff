"""The job pages of preference tuning: DPO and ORPO in the form, the estimate of pairs, the reward charts."""
from __future__ import annotations

import re

from tests.support.database import counted_queries
from tests.support.factories import insert_events, running_job
from tests.support.pages import htmx


def add_rewards(job, steps: int, evals: int) -> None:
    """Reward metrics on the job's progress and evaluation events, as a DPO run reports them."""
    rows = [{"job": job.id, "kind": "metric", "message": f"step {step}",
             "data": {"type": "progress", "step": step, "loss": 0.69 - step / 100, "reward_margin": step / 10,
                      "reward_accuracy": min(1.0, step / 20)}} for step in range(1, steps + 1)]
    rows += [{"job": job.id, "kind": "metric", "message": "eval",
              "data": {"type": "eval", "step": step, "eval_loss": 0.6, "eval_reward_margin": step / 12,
                       "eval_reward_accuracy": 0.75}} for step in range(steps // evals, steps + 1, steps // evals)]
    insert_events(job, rows)


def test_form_explains_dpo_and_orpo_and_offers_their_preset_and_hyperparameters(browser):
    html = browser.get("/jobs/new?method=dpo").get_data(as_text=True)
    assert 'name="method" value="dpo" checked' in html and 'name="method" value="orpo"' in html
    assert "learns which of two answers is better from preference pairs" in html
    assert "with no reference model" in html
    assert 'name="preset" value="preference"' in html
    assert re.search(r'<details id="preference-settings" open>', html), "open when a preference method is chosen"
    for name in ("beta", "loss_type", "label_smoothing", "reference_free", "adapter"):
        assert f'name="{name}"' in html
    assert '<option value="ipo"' in html


def test_estimate_of_dpo_counts_two_sequences_per_pair_and_the_reference_pass(browser):
    query = "base_model=qwen2.5-1.5b-instruct&max_seq_length=1024&batch_size=4&lora_r=16&backend=local"
    gb = {}
    for method, adapter in (("lora", "lora"), ("dpo", "lora"), ("orpo", "lora"), ("dpo", "full"), ("orpo", "full")):
        html = browser.get(f"/jobs/new/estimate?{query}&method={method}&adapter={adapter}"
                           "&gradient_checkpointing=true", headers=htmx("memory-estimate")).get_data(as_text=True)
        gb[method, adapter] = float(re.search(r"<strong>([\d.]+) GB</strong>", html).group(1))
        if method == "dpo":
            assert "Two sequences per pair (chosen and rejected); DPO's reference pass runs first" in html
    assert gb["lora", "lora"] < gb["orpo", "lora"] == gb["dpo", "lora"]
    assert gb["dpo", "full"] > gb["orpo", "full"], "full DPO keeps a frozen copy as its reference"


def test_dpo_job_page_charts_reward_margin_and_accuracy_beside_the_loss(browser, owner, in_db):
    job = in_db(running_job, owner, steps=0, evals=0, logs=1, method="dpo")
    in_db(add_rewards, job, 20, 4)
    html = browser.get(f"/jobs/{job.id}").get_data(as_text=True)
    for figure, title in (("job-chart", "Loss"), ("job-reward-margin", "Reward margin"),
                          ("job-reward-accuracy", "Reward accuracy")):
        assert f'<figure id="{figure}" class="loss-chart">\n  <h2>{title}</h2>' in html
    assert "Training margin (20 points)" in html and "Evaluation accuracy (4 points)" in html
    with counted_queries() as queries:
        live = browser.get(f"/jobs/{job.id}/progress", headers=htmx("job-progress")).get_data(as_text=True)
    assert 'id="job-reward-margin" class="loss-chart" hx-swap-oob="true"' in live
    sft = in_db(running_job, owner, steps=20, evals=4, logs=1)
    with counted_queries() as sft_queries:
        browser.get(f"/jobs/{sft.id}/progress", headers=htmx("job-progress"))
    assert len(queries) == len(sft_queries), "the reward series come with the loss, in the same query"


def test_sft_job_page_has_no_reward_charts(browser, owner, in_db):
    job = in_db(running_job, owner)
    assert "Reward margin" not in browser.get(f"/jobs/{job.id}").get_data(as_text=True)
