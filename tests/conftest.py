import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_keras_session():
    """Each test starts with Keras' name counters and graph reset, as a new process would."""
    keras.backend.clear_session()
    yield
