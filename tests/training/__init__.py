"""Tests of the training program (workers/train.py) on the built-in tiny model."""
