import numpy as np
import pytest


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real RGB photo (scikit-image's astronaut), downscaled to 128x128."""
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def gray_photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.camera()[::8, ::8, None])


@pytest.fixture(scope="session")
def fmnist_folder(tmp_path_factory) -> "object":
    """A small real image folder: 3 classes x 6 images of the bundled Fashion-MNIST subset."""
    from augmentor.datasets import fashion_mnist_subset
    from augmentor.io import write_image_folder

    ds = fashion_mnist_subset("train")
    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:6] for c in range(3)])
    root = tmp_path_factory.mktemp("fmnist") / "src"
    write_image_folder(root, ds.images[keep], ds.labels[keep], ds.classes)
    return root


@pytest.fixture(scope="module")
def gdata():
    """Generator training data: 12 real images of 3 classes, 16x16 centre crops in [-1, 1]."""
    import torch

    from augmentor.datasets import fashion_mnist_subset
    from augmentor.generators.data import GeneratorData

    ds = fashion_mnist_subset("train")
    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:12] for c in range(3)])
    x = torch.from_numpy(ds.images[keep][:, None, 6:22, 6:22].copy()).float() / 127.5 - 1
    return GeneratorData(x, torch.from_numpy(ds.labels[keep]), ds.classes[:3], "test", [])


@pytest.fixture(autouse=True)
def _global_rng_untouched():
    """Fail a test that leaves the global random state of numpy, torch or ``random`` changed
    (torchvision's conftest habit): library code draws from generators passed in, and a test
    that seeds globally restores what it changed (``torch.random.fork_rng`` and the like)."""
    import random

    import torch

    before = (random.getstate(), np.random.get_state(), torch.get_rng_state())  # noqa: NPY002
    yield
    after = (random.getstate(), np.random.get_state(), torch.get_rng_state())  # noqa: NPY002
    changed = [
        name
        for name, a, b in zip(("random", "numpy", "torch"), before, after)
        if not _same_state(a, b)
    ]
    assert not changed, f"the test changed the global random state of {', '.join(changed)}"


def _same_state(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, tuple) and a and isinstance(a[0], str) and a[0] == "MT19937":  # numpy
        return all(np.array_equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture
def global_rng():
    """For a test that draws from the global generators on purpose (building a network with
    random weights, torch.rand...): seeds them and gives the previous states back after."""
    from augmentor.seeding import global_seed

    with global_seed(0, "init"):
        yield


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip themselves without CUDA (they run with ``-m gpu``)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
