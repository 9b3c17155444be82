import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_model_cache(tmp_path_factory):
    """Networks trained by tests (full-data baselines, victims) go to a throw-away cache, never the user's."""
    os.environ["DISTILL_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    yield
