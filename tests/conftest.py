import pytest
import torch

# Tests are tiny: one thread avoids oversubscribing the CPU (which slows small ops many times over)
# and makes reductions deterministic, so the tight fixture tolerances do not depend on the machine.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
