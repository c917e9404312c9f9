"""Backbones: the offline EfficientNet-Lite weights, weight files, preprocessing, frozen BN."""

import numpy as np
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from transfer.backbones import BackboneError, create_backbone, list_backbones
from transfer.backbones.lite import efficientnet_lite_state_dict
from transfer.backbones.weights import load_state_dict_file
from transfer.classifier import Classifier
from transfer.preprocess import Preprocessing, PreprocessModule, to_chw_uint8


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet_lite0").eval()


def imagenet_logits(backbone, image: np.ndarray) -> torch.Tensor:
    """Features through our loading path, then the wheel's own ImageNet classifier."""
    from transfer.backbones.lite import lite_wheel_file as _lite_wheel_file

    raw = load_state_dict_file(_lite_wheel_file(0))
    state = efficientnet_lite_state_dict(raw, [len(s) for s in backbone.body.blocks])
    pre = PreprocessModule(backbone.preprocessing)
    with torch.no_grad():
        feats = backbone(pre(to_chw_uint8(image)[None]))
    return feats @ state["classifier.weight"].T + state["classifier.bias"]


def test_lite0_recognises_real_photos(lite0):
    from skimage import data

    cat = imagenet_logits(lite0, data.chelsea())[0]
    assert int(cat.argmax()) in range(281, 286), cat.topk(5)
    coffee = imagenet_logits(lite0, data.coffee())[0]
    assert int(coffee.argmax()) == 967, coffee.topk(5)  # espresso
    assert coffee.softmax(0)[967] > 0.5


def test_lite0_mapping_loads_strictly_including_the_classifier(global_rng):
    import timm

    from transfer.backbones.lite import lite_wheel_file as _lite_wheel_file

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    raw = load_state_dict_file(_lite_wheel_file(0))
    mapped = efficientnet_lite_state_dict(raw, [len(s) for s in model.blocks])
    assert len(mapped) == len(raw) == len(model.state_dict())
    model.load_state_dict(mapped, strict=True)  # raises on any missing / unexpected key


def test_lite0_exposes_features_and_preprocessing(lite0):
    assert lite0.num_features == 1280
    p = lite0.preprocessing
    assert (p.input_size, p.resize_size, p.interpolation) == (224, 256, "bicubic")
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.5, 0.5, 0.5)
    assert len(lite0.groups) >= 3
    names = {n for g in lite0.groups for n in g}
    assert names == {n for n, _ in lite0.body.named_parameters()}


def test_registry_lists_and_rejects_with_suggestion():
    assert {"efficientnet_lite0", "small_cnn"} <= set(list_backbones())
    with pytest.raises(BackboneError, match="efficientnet_lite0"):
        create_backbone("efficientnet_lit0")


def test_timm_name_with_random_init_and_offline_error(monkeypatch, global_rng):
    bb = create_backbone("timm/resnet10t", pretrained=False).eval()
    assert bb(torch.zeros(1, 3, 32, 32)).shape == (1, bb.num_features)
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(bb.body)  # read from timm, not hard-coded
    assert bb.preprocessing.input_size == cfg["input_size"][-1]
    assert bb.preprocessing.mean == tuple(cfg["mean"])
    import huggingface_hub.constants

    # as on a machine without network (the constant is read from the environment at import)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BackboneError, match="--weights PATH"):
        create_backbone("timm/resnet10t")


def test_weights_file_round_trip_and_errors(tmp_path, global_rng):
    from safetensors.torch import save_file

    src = create_backbone("small_cnn", pretrained=False)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.body.state_dict().items()}, str(path))
    loaded = create_backbone("small_cnn", weights=path)
    for (k, a), (_, b) in zip(src.body.state_dict().items(), loaded.body.state_dict().items()):
        assert torch.equal(a, b), k
    torch.save({"model": src.body.state_dict()}, tmp_path / "wrapped.pt")
    create_backbone("small_cnn", weights=tmp_path / "wrapped.pt")

    (tmp_path / "text.pt").write_text("not weights")
    with pytest.raises(BackboneError, match="not a state_dict"):
        create_backbone("small_cnn", weights=tmp_path / "text.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(BackboneError, match="does not hold a state_dict"):
        create_backbone("small_cnn", weights=tmp_path / "list.pt")
    with pytest.raises(BackboneError, match="do not match the backbone"):
        create_backbone("efficientnet_lite0", weights=path)
    with pytest.raises(BackboneError, match="no such file"):
        create_backbone("small_cnn", weights=tmp_path / "missing.pt")


def test_frozen_batchnorm_gives_the_same_features_in_train_mode(lite0, global_rng):
    model = Classifier(lite0, 3)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        eval_feats = model.eval().backbone(x)
        model.train()
        train_feats = model.backbone(x)
    assert model.head[0].training  # the head's dropout does train
    assert not any(m.training for m in model.backbone.modules() if isinstance(m, _BatchNorm))
    torch.testing.assert_close(train_feats, eval_feats)
    # and the check can fail: trainable BatchNorm normalizes with batch statistics
    for p in model.backbone.parameters():
        p.requires_grad_(True)
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model.backbone(x), eval_feats, atol=1e-3)
    model.eval()


def test_bn_stats_frozen_keeps_all_batchnorm_in_eval_while_training(global_rng):
    bb = create_backbone("timm/resnet10t", pretrained=False)
    model = Classifier(bb, 2, bn_stats_frozen=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("shape", [(1, 1, 28, 28), (2, 3, 60, 40), (1, 4, 31, 97)])
def test_preprocess_any_size_and_channels(shape, global_rng):
    pre = PreprocessModule(Preprocessing(32, 36, (0.5,) * 3, (0.25,) * 3, "bicubic"))
    x = torch.randint(0, 256, shape, dtype=torch.uint8)
    y = pre(x)
    assert y.shape == (shape[0], 3, 32, 32)
    assert y.dtype == torch.float32
    assert y.min() >= (0 - 127.5) / 63.75 - 1e-5 and y.max() <= (255 - 127.5) / 63.75 + 1e-5


def test_preprocess_centre_crop_ratio():
    # a 256-wide white square centred in a 512x512 black image, recipe resize 256 / crop 224:
    # the crop keeps the central 448 px, so the white square fills 256/448 of the output
    img = np.zeros((512, 512), np.uint8)
    img[128:384, 128:384] = 255
    pre = PreprocessModule(Preprocessing(224, 256, (0.0,) * 3, (1 / 255,) * 3, "nearest"))
    out = pre(to_chw_uint8(img)[None])[0, 0]
    white = (out > 127).float().mean().item()
    assert white == pytest.approx((256 / 448) ** 2, abs=0.01)


def test_preprocessing_validation():
    with pytest.raises(BackboneError, match="input_size"):
        Preprocessing(224, 200, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(BackboneError, match="interpolation"):
        Preprocessing(224, 256, (0.5,) * 3, (0.5,) * 3, "lanczos")
    assert Preprocessing(224, 256, (0.5,) * 3, (0.5,) * 3).scaled(112).resize_size == 128


def test_crop_pct_sets_the_resize_and_keeps_the_whole_short_side():
    base = Preprocessing(224, 256, (0.5,) * 3, (0.5,) * 3)
    assert base.crop_pct == pytest.approx(0.875)
    full = base.with_crop(1.0)
    assert (full.input_size, full.resize_size, full.crop_pct) == (224, 224, 1.0)
    assert base.scaled(112).with_crop(0.8).resize_size == 140
    with pytest.raises(BackboneError, match=r"crop_pct must be in \(0.5, 1\], got 0.4"):
        base.with_crop(0.4)
    # a 28x28 image with a bright 1-pixel frame: crop 1.0 keeps the frame, 0.875 cuts it away
    img = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    img[..., 0, :] = img[..., -1, :] = img[..., :, 0] = img[..., :, -1] = 255
    unit = dict(mean=(0.0,) * 3, std=(1 / 255,) * 3, interpolation="nearest")
    kept = PreprocessModule(Preprocessing(56, 56, **unit))(img)
    cut = PreprocessModule(Preprocessing(56, 64, **unit))(img)
    assert kept[0, 0, 0].min() == 255 and kept[0, 0, -1].min() == 255
    assert cut[0, 0, 0].max() == 0 and cut[0, 0, -1].max() == 0
