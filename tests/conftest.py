import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import xablate.schema  # noqa: E402,F401  (registers model/_builder with Hydra's ConfigStore before any compose)
from xablate.onednn import apply as apply_onednn  # noqa: E402

apply_onednn("auto")  # before any convolution in this process: the in-process tests train like run.py's jobs

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_keras_session():
    """Each test starts with Keras' name counters and graph reset, as a new process would."""
    keras.backend.clear_session()
    yield
