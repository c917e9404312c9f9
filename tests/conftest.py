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
