"""Asking for a completion: the checks (job state, messages, limits) and the row put on the playground queue."""
from __future__ import annotations

import time

from app.errors import Conflict, StudioError, ValidationFailed
from app.jobs import states
from app.jobs.context import JobContext
from app.jobs.judging import job_adapter
from app.models import Completion, Job, User
from app.queue import PLAYGROUND_QUEUE
from trainer.config import conversation_problem

TASK = "workers.tasks.generate_completion"
DEFAULT_MAX_TOKENS = 128
FIELDS = {"messages", "max_tokens", "temperature", "adapter"}


class TooManyRequests(StudioError):
    """A playground limit was reached: the user's rate, or the queue's length."""

    status = 429
    code = "rate_limited"


def check_payload(payload: dict, max_tokens_cap: int) -> dict:
    """The completion's values from the request body; ValidationFailed names each bad field (and message index)."""
    problems = {name: "not a completion field" for name in sorted(set(payload) - FIELDS)}
    messages = payload.get("messages")
    problem = conversation_problem(messages)
    if problem:
        problems[message_field(messages, problem)] = problem
    max_tokens = payload.get("max_tokens", min(DEFAULT_MAX_TOKENS, max_tokens_cap))
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= max_tokens_cap:
        problems["max_tokens"] = f"Give an integer from 1 to {max_tokens_cap}."
    temperature = payload.get("temperature", 0.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        problems["temperature"] = "Give a number from 0 (greedy) to 2."
    if not isinstance(payload.get("adapter", True), bool):
        problems["adapter"] = "Give true (the tuned model) or false (the base model)."
    if problems:
        raise ValidationFailed("The completion request has invalid fields.", details=problems)
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages], "max_tokens": max_tokens,
            "temperature": float(temperature), "adapter": payload.get("adapter", True)}


def message_field(messages, problem: str) -> str:
    """The field a conversation problem is about: messages[i] for one message, messages for the whole list."""
    if problem.startswith("message "):
        return f"messages[{problem.split(' ', 2)[1]}]"
    if problem.startswith("the last message"):
        return f"messages[{len(messages) - 1}]"
    return "messages"


def check_job(job: Job, adapter: bool) -> None:
    """Only a succeeded job has a model to talk to; a full fine-tune has no adapter to switch off."""
    if job.status != states.SUCCEEDED:
        raise Conflict(f"The job is {job.status}: the playground opens once it has succeeded.",
                       details={"status": job.status})
    if not adapter and job_adapter(job) == "full":
        raise ValidationFailed("A full fine-tune has no adapter to switch off.", details={"adapter": "must be true"})


def check_limits(ctx: JobContext, owner: User) -> None:
    """The user's completions per minute, then the playground queue's length; TooManyRequests past either."""
    window = int(time.time() // 60)
    key = f"studio:playground:rate:{owner.id}:{window}"
    with ctx.redis.pipeline() as pipe:
        count, _ = pipe.incr(key).expire(key, 120).execute()
    if count > ctx.settings.playground_rate_per_minute:
        raise TooManyRequests(f"At most {ctx.settings.playground_rate_per_minute} completions a minute.",
                              details={"limit": "playground_rate_per_minute"})
    from_queue = ctx.redis.llen(f"rq:queue:{PLAYGROUND_QUEUE}")
    if from_queue >= ctx.settings.playground_queue_max:
        raise TooManyRequests("The playground is busy; try again in a moment.",
                              details={"limit": "playground_queue_max", "queued": from_queue})


def request_completion(ctx: JobContext, owner: User, job: Job, payload, enqueue) -> Completion:
    """Check the request, record it and put it on the playground queue; enqueue(task, id, queue=…) is the app's."""
    if not isinstance(payload, dict):
        raise ValidationFailed("Send the completion as a JSON object.", details={"field": "body"})
    values = check_payload(payload, ctx.settings.playground_max_tokens)
    check_job(job, values["adapter"])
    check_limits(ctx, owner)
    completion = Completion.create(job=job, owner=owner, **values)
    enqueue(TASK, completion.id, queue=PLAYGROUND_QUEUE, job_timeout=600)
    return completion
