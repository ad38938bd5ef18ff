"""The playground: completions from a succeeded job's model, generated on their own queue (no Flask here)."""
