"""The public surface of each package, snapshotted (kornia's test_api_surface habit): adding or
removing a public name is a decision, made here on purpose."""

import importlib

import pytest

SURFACE = {
    "augmentor": [
        "Affine", "AugMix", "AugmentedDataset", "AutoAugment", "AutoContrast", "Brightness",
        "CenterCrop", "ChannelShuffle", "ColorJitter", "Contrast", "CutMix", "Elastic",
        "Equalize", "Gamma", "GaussianBlur", "GaussianNoise", "Grayscale", "GridDistortion",
        "HorizontalFlip", "Hue", "Invert", "Jpeg", "MixUp", "MotionBlur", "Node", "Normalize",
        "OneOf", "Op", "Pad", "Perspective", "Pipeline", "Posterize", "RandAugment",
        "RandomApply", "RandomCrop", "RandomErasing", "RandomResizedCrop", "Resize", "Rotate",
        "SaltPepper", "Saturation", "Sequential", "Sharpness", "Solarize", "SomeOf",
        "SpeckleNoise", "TrivialAugmentWide", "VerticalFlip", "__version__", "list_ops",
        "list_presets", "preset", "register_op",
    ],
    "augmentor.generators": [
        "DivergenceError", "GENERATORS", "GeneratorError", "LoadedGenerator", "TrainConfig",
        "generator_class", "list_generators", "load_generator",
    ],
    "transfer": [
        "Backbone", "BackboneError", "Classifier", "Comparison", "DataError", "FeatureCache",
        "FinetuneConfig", "FinetuneResult", "LabelledImages", "Predictor", "Preprocessing",
        "RunError", "TuneConfig", "TuneResult", "classification_metrics", "compare",
        "create_backbone", "finetune", "list_backbones", "load_folder", "load_run",
        "mean_interval", "tune",
    ],
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(SURFACE))
def test_public_names_are_the_snapshot(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(SURFACE[package])


@pytest.mark.parametrize("package", sorted(SURFACE))
def test_every_public_name_resolves_and_is_documented(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), f"{package}.{name} has no docstring"


def test_lazy_faces_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, transfer, transfer.config, augmentor.generators, "
        "augmentor.generators.config; print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_the_function_not_the_module():
    import transfer
    import transfer.comparison
    import transfer.finetuning

    assert callable(transfer.finetune) and callable(transfer.compare)
