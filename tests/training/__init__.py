"""Tests of the training program (the trainer package and its bundle) on the built-in tiny model."""
