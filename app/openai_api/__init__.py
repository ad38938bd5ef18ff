"""The OpenAI fine-tuning API's dialect under /v1, over the same services as /api/v1."""
