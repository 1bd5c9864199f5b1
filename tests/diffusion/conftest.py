import pytest

pytest.importorskip("diffusers")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def wan_pipe():
    from tests.diffusion.tiny import wan_pipeline

    return wan_pipeline()
