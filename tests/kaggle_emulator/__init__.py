"""A local Kaggle API for tests, reached by the real kaggle client through HTTP_PROXY; see docs/KAGGLE.md."""
from tests.kaggle_emulator.emulator import Fault, KaggleEmulator

__all__ = ["Fault", "KaggleEmulator"]
