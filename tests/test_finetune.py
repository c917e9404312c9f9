"""Fine-tuning end to end on real images with tiny real models, exports, cache and statistics."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from augmentor.datasets import fashion_mnist_subset
from augmentor.seeding import stream
from transfer.classifier import backbone_groups
from transfer.comparison import compare
from transfer.config import FinetuneConfig
from transfer.data import EpochSampler, TrainImages
from transfer.errors import DataError, RunError
from transfer.evaluate import classification_metrics, mean_interval
from transfer.export import Predictor, load_run
from transfer.features import FeatureCache
from transfer.finetuning import finetune
from transfer.images import LabelledImages, load_folder
from transfer.module import cosine_factor
from transfer.preprocess import PreprocessModule
from transfer.splits import per_class_draws, repeated_splits, stratified_split


@pytest.fixture(scope="module")
def fmnist() -> LabelledImages:
    ds = fashion_mnist_subset("train")
    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:30] for c in range(4)])
    return LabelledImages.from_arrays(ds.images[keep], ds.labels[keep], ds.classes[:4])


CNN = dict(
    backbone="small_cnn",
    pretrained=False,
    preset="light",
    lr=2e-3,
    head_lr=2e-3,
    mixup=0.0,  # off unless a test is about it: a few epochs are too short to gain from it
    cutmix=0.0,
)


@pytest.fixture(scope="module")
def cnn_run(fmnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = FinetuneConfig(strategy="full", epochs=4, val_fraction=0.25, patience=0, **CNN)
    return finetune(fmnist, out, cfg, progress=False)


def test_finetune_learns_and_writes_the_run_directory(cnn_run):
    out = cnn_run.out
    for name in (
        "model.safetensors",
        "config.json",
        "labels.json",
        "preprocess.json",
        "export/model.torchscript.pt",
        "export/model.onnx",
        "checkpoints/last.ckpt",
        "report/metrics.json",
        "report/per_class.csv",
        "report/confusion.png",
        "report/curves.png",
        "report/config.json",
        "report/report.md",
    ):
        assert (out / name).is_file(), name
    assert list((out / "logs" / "tensorboard").rglob("events.out.tfevents*"))
    assert (out / "logs" / "finetune" / "metrics.csv").is_file()
    # 4 classes: chance is 0.25; four epochs of a small CNN on real images do clearly better
    assert cnn_run.val_metrics["accuracy"] > 0.5
    resolved = json.loads((out / "report" / "config.json").read_text())
    assert resolved["seed"] == 0 and "torch" in resolved["versions"]
    assert json.loads((out / "report" / "metrics.json").read_text())["finetune_epochs"] == 4
    assert json.loads((out / "labels.json").read_text()) == cnn_run.classes


def test_the_report_shows_the_top_losses_and_the_most_confused_pairs(cnn_run, fmnist):
    report = cnn_run.out / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    losses = metrics["top_losses"]
    assert losses and losses == sorted(losses, key=lambda r: -r["loss"])  # worst first
    # each names a validation image of the run by its source, with its true class
    by_source = {src: fmnist.classes[int(y)] for src, y in zip(fmnist.sources, fmnist.labels)}
    assert all(by_source[r["source"]] == r["true"] for r in losses)
    wrong = [r for r in losses if r["true"] != r["predicted"]]
    cm, names = np.array(metrics["confusion"]), metrics["classes"]
    pairs = metrics["most_confused"]
    assert [r["count"] for r in pairs] == sorted((r["count"] for r in pairs), reverse=True)
    assert all(cm[names.index(r["true"]), names.index(r["predicted"])] == r["count"] for r in pairs)
    if len(pairs) < 10:
        assert sum(r["count"] for r in pairs) == cm.sum() - np.trace(cm)
    if wrong:  # four epochs leave some mistakes; the gallery shows them
        assert (report / "top_losses.png").stat().st_size > 1000
        assert f"`{wrong[0]['source']}`" in (report / "report.md").read_text()


def test_checkpoints_load_without_running_code(cnn_run):
    ckpt = torch.load(cnn_run.out / "checkpoints" / "last.ckpt", weights_only=True)
    assert "state_dict" in ckpt and "optimizer_states" in ckpt


@pytest.fixture(scope="module")
def tta_run(fmnist, tmp_path_factory):
    """A run whose exported model averages four test-time views and applies a temperature."""
    out = tmp_path_factory.mktemp("tta")
    cfg = FinetuneConfig(
        strategy="full", epochs=2, val_fraction=0.25, patience=0, tta="flip+scale", **CNN
    )
    return finetune(fmnist, out, cfg, progress=False)


@pytest.mark.parametrize("which", ["cnn_run", "tta_run"])
def test_saved_model_and_exports_agree(which, fmnist, request):
    import onnxruntime as ort

    from transfer.calibration import Served, read_calibration

    run = request.getfixturevalue(which)
    model, classes, pre, cfg = load_run(run.out)
    assert classes == run.classes and cfg["backbone"] == "small_cnn"
    calib = read_calibration(run.out, cfg)
    assert calib.fitted_on == "validation" and calib.temperature != 1.0
    assert calib.tta == ("flip+scale" if which == "tta_run" else "none")
    served = Served(model, pre.input_size, calib.tta, calib.temperature)
    images = [fmnist.images[0], fmnist.images[40], np.repeat(fmnist.images[70], 3, axis=2)]
    predictor = Predictor(run.out)
    session = ort.InferenceSession(str(run.out / "export" / "model.onnx"))
    preprocess = PreprocessModule(pre)
    for img in [*images, np.zeros((45, 33, 3), np.uint8)]:
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        with torch.no_grad():
            eager = served(preprocess(x))[0].numpy()
            plain = model(preprocess(x)).softmax(-1)[0].numpy()
        assert not np.allclose(eager, plain, atol=1e-4)  # the temperature (and views) act
        np.testing.assert_allclose(predictor.probabilities(img), eager, atol=1e-5)
        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # ONNX takes RGB only
        onnx = session.run(None, {"images": np.ascontiguousarray(rgb.numpy())})[0][0]
        np.testing.assert_allclose(onnx, eager, atol=1e-5)
    top = predictor.predict(images[0], top_k=2)
    assert len(top) == 2 and top[0][1] >= top[1][1] and top[0][0] in classes


def test_run_directory_errors(cnn_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(cnn_run.out, broken, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    (broken / "labels.json").unlink()
    with pytest.raises(RunError, match=r"labels\.json is missing"):
        load_run(broken)
    (broken / "labels.json").write_text(json.dumps(["a", "b"]))  # 2 classes, weights have 4
    with pytest.raises(RunError, match="does not match its config"):
        load_run(broken)
    with pytest.raises(RunError, match="does not exist"):
        load_run(tmp_path / "nowhere")


def test_linear_probe_keeps_the_backbone_and_uses_the_cache(fmnist, tmp_path):
    cfg = FinetuneConfig(strategy="linear", probe_epochs=3, val_fraction=0.25, **CNN)
    r = finetune(fmnist, tmp_path / "a", cfg, progress=False, export=False)
    shards = list((tmp_path / "a" / "feature_cache").rglob("*.safetensors"))
    assert shards
    cfg2 = FinetuneConfig(
        strategy="linear",
        probe_epochs=3,
        val_fraction=0.25,
        cache_dir=str(tmp_path / "a" / "feature_cache"),
        **CNN,
    )
    r2 = finetune(fmnist, tmp_path / "b", cfg2, progress=False, export=False)
    # the same seed gives the same random backbone, so every feature is a cache hit
    assert r2.val_metrics["accuracy"] == pytest.approx(r.val_metrics["accuracy"])
    assert len(list((tmp_path / "a" / "feature_cache").rglob("*.safetensors"))) == len(shards)


def test_feature_cache_keys(fmnist, tmp_path, global_rng):
    from transfer.backbones import create_backbone

    torch.manual_seed(0)
    bb = create_backbone("small_cnn", pretrained=False)
    pre = PreprocessModule(bb.preprocessing)
    data = fmnist.subset(range(6))
    cache = FeatureCache(tmp_path)
    first = cache.features(bb, pre, data)
    assert (cache.hits, cache.misses) == (0, 6)
    again = FeatureCache(tmp_path)  # a new process reads the shards
    torch.testing.assert_close(again.features(bb, pre, data), first)
    assert (again.hits, again.misses) == (6, 0)
    changed = data.subset(range(6))
    changed.images[2] = 255 - changed.images[2]
    changed._keys = None
    again.features(bb, pre, changed)
    assert again.misses == 1  # only the changed image
    with torch.no_grad():
        bb.body.features[0].weight.add_(0.01)
    bb._fingerprint = None  # new weights -> a new directory
    cache3 = FeatureCache(tmp_path)
    cache3.features(bb, pre, data)
    assert cache3.misses == 6
    from augmentor import preset

    views = cache3.features(bb, pre, data, views=3, pipeline=preset("heavy", seed=1))
    assert views.shape == (3, 6, bb.num_features)
    assert not torch.allclose(views[1], views[2])
    again_views = FeatureCache(tmp_path).features(
        bb, pre, data, views=3, pipeline=preset("heavy", seed=1)
    )
    torch.testing.assert_close(again_views, views)


def test_gradual_unfreezing_trains_groups_from_the_top(fmnist, tmp_path):
    cfg = FinetuneConfig(
        backbone="timm/resnet10t",
        pretrained=False,
        strategy="gradual",
        epochs=2,
        image_size=32,
        preset=None,
        val_fraction=0.0,  # keep the last weights: a best-by-validation pick could be epoch 0
        patience=0,
        unfreeze_every=1,
        bn_stats_frozen=False,
    )
    from augmentor.seeding import global_seed
    from transfer.backbones import create_backbone

    with global_seed(cfg.seed):  # the scope finetune builds its network in
        fresh = create_backbone("timm/resnet10t", pretrained=False)  # the same init as the run's
    before = {k: v.clone() for k, v in fresh.body.state_dict().items()}
    r = finetune(fmnist, tmp_path, cfg, progress=False, export=False)
    after = r.model.backbone.body.state_dict()
    groups = r.model.backbone.groups
    top = [k for k in groups[-1] if k in after]
    bottom = [k for k in groups[0] if k in after]
    # epoch 0 trains the head only, epoch 1 unfreezes the top group; the stem never trains
    assert any(not torch.equal(after[k], before[k]) for k in top)
    assert all(torch.equal(after[k], before[k]) for k in bottom)


def test_schedule_is_zero_until_a_group_unfreezes():
    assert cosine_factor(0, 10, 2, 1.0, 5) == 0.0
    assert cosine_factor(19, 10, 2, 1.0, 5) == 0.0
    assert cosine_factor(20, 10, 2, 1.0, 5) == pytest.approx(0.1)
    assert cosine_factor(30, 10, 2, 1.0, 5) == pytest.approx(1.0)
    assert cosine_factor(49, 10, 2, 1.0, 5) < 0.05
    assert cosine_factor(5, 10, None, 1.0, 5) == 0.0


def test_backbone_groups_rates_and_starts(global_rng):
    from transfer.backbones import create_backbone

    bb = create_backbone("timm/resnet10t", pretrained=False)
    groups = backbone_groups(bb, "gradual", 1e-3, 0.5, 2)
    n = len(groups)
    assert groups[-1].lr == pytest.approx(1e-3) and groups[-1].start_epoch == 2
    assert groups[0].lr == pytest.approx(1e-3 * 0.5 ** (n - 1)) and groups[0].start_epoch == 2 * n
    assert all(g.start_epoch is None for g in backbone_groups(bb, "linear", 1e-3, 0.5, 1))
    assert sum(len(g.params) for g in groups) == len(list(bb.parameters()))


def test_synthetic_images_join_training_only(fmnist, global_rng):
    from transfer.backbones import create_backbone

    pre = PreprocessModule(create_backbone("small_cnn", pretrained=False).preprocessing)
    real, synth = fmnist.subset(range(0, 120, 2)), fmnist.subset(range(1, 120, 2))
    ds = TrainImages(real, pre, None, synth, synthetic_ratio=0.5, seed=0)
    assert len(ds) == 60 + 30
    x, y = ds[(0, 75)]
    assert x.shape == (3, 28, 28) and 0 <= y < 4
    assert ds.image(0, 75)[0] is not ds.image(1, 75)[0] or len(synth) == 1
    other = LabelledImages(synth.images, synth.labels, ["a", "b", "c", "d"], synth.sources)
    with pytest.raises(DataError, match="do not match"):
        TrainImages(real, pre, None, other, 0.5)


def test_stratified_splits_and_their_errors():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    kept, held = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[held]).tolist() == [2, 4, 6]
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 60
    splits = repeated_splits(labels, 3, 0.2, seed=0)
    assert len({tuple(h) for _, h in splits}) == 3
    with pytest.raises(DataError, match="'rare' has 1"):
        stratified_split(np.array([0, 0, 0, 1]), 0.3, 0, ["common", "rare"])
    with pytest.raises(DataError, match="at least 2 classes"):
        stratified_split(np.zeros(5, int), 0.3, 0)


def test_epoch_sampler_shards_and_is_deterministic():
    full = list(EpochSampler(10, seed=3))
    assert sorted(i for _, i in full) == list(range(10))
    assert list(EpochSampler(10, seed=3)) == full
    s = EpochSampler(10, seed=3)
    s.set_epoch(1)
    assert [i for _, i in s] != [i for _, i in full] and all(e == 1 for e, _ in s)
    shards = [list(EpochSampler(10, 3, rank=r, world_size=3)) for r in range(3)]
    assert {len(x) for x in shards} == {4}
    assert {i for x in shards for _, i in x} == set(range(10))


def test_mean_interval_matches_the_t_distribution():
    from scipy import stats

    v = [0.81, 0.84, 0.79, 0.86, 0.83]
    iv = mean_interval(v)
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(v), scale=stats.sem(v))
    assert (iv.low, iv.high) == (pytest.approx(lo), pytest.approx(hi))
    corrected = mean_interval(v, test_train_ratio=0.25)
    assert corrected.half_width > iv.half_width  # Nadeau-Bengio widens it
    assert corrected.half_width == pytest.approx(iv.half_width * np.sqrt((0.2 + 0.25) / 0.2))
    with pytest.raises(ValueError, match="at least 2"):
        mean_interval([0.5])


def test_classification_metrics_on_an_imbalanced_set():
    y = np.array([0, 0, 0, 0, 1])
    probs = np.eye(2)[[0, 0, 0, 0, 0]]  # always class 0
    m = classification_metrics(y, probs, ["a", "b"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["per_class"][1]["recall"] == 0 and m["confusion"] == [[4, 0], [1, 0]]


def test_fine_tuning_keeps_the_whole_short_side_by_default(global_rng):
    from transfer.backbones import create_backbone

    # The Lite family's own recipe is ImageNet's evaluation crop (resize 256, crop 224); a
    # fine-tuning run keeps the whole image unless crop_pct says otherwise (None: the backbone's)
    bb = create_backbone("efficientnet_lite0", pretrained=False)
    assert bb.preprocessing.crop_pct == pytest.approx(0.875)
    pre = FinetuneConfig(image_size=128).preprocessing(bb)
    assert (pre.input_size, pre.resize_size, pre.crop_pct) == (128, 128, 1.0)
    own = FinetuneConfig(image_size=128, crop_pct=None).preprocessing(bb)
    assert (own.input_size, own.resize_size) == (128, 146)
    assert FinetuneConfig(crop_pct=None).preprocessing(bb) == bb.preprocessing
    assert own.mean == pre.mean == bb.preprocessing.mean
    assert own.interpolation == pre.interpolation == bb.preprocessing.interpolation


def test_config_validation_names_the_field():
    with pytest.raises(DataError, match="strategy must be one of"):
        FinetuneConfig(strategy="fancy")
    with pytest.raises(DataError, match="epochs must be an integer >= 1"):
        FinetuneConfig(epochs=0)
    with pytest.raises(DataError, match=r"crop_pct must be in \(0.5, 1\] or None, got 1.5"):
        FinetuneConfig(crop_pct=1.5)
    with pytest.raises(DataError, match="unknown fine-tuning config keys: colour"):
        FinetuneConfig.from_dict({"colour": 1})
    with pytest.raises(DataError, match="epochs must be an integer >= 1 or None, got True"):
        FinetuneConfig(epochs=True)


def test_mixup_and_cutmix_mix_training_batches(fmnist, global_rng):
    from transfer.backbones import create_backbone
    from transfer.classifier import Classifier, GroupSpec
    from transfer.module import ClassifierModule

    assert FinetuneConfig(mixup=0, cutmix=0).batch_mix(4) == []
    ops = FinetuneConfig().batch_mix(4)  # the default: both
    assert [type(op).__name__ for op in ops] == ["MixUp", "CutMix"]
    with pytest.raises(DataError, match="cutmix must be >= 0, got -1"):
        FinetuneConfig(cutmix=-1)

    torch.manual_seed(0)
    net = Classifier(create_backbone("small_cnn", pretrained=False), 4, dropout=0.0).eval()
    with torch.no_grad():
        net.head[1].weight.mul_(100)  # confident logits, so the targets matter to the loss
    x = torch.from_numpy(np.stack(fmnist.images[::15])).float().div(255)  # N, 28, 28, 1
    x = x.permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
    y = torch.from_numpy(np.asarray(fmnist.labels[::15])).long()
    group = [GroupSpec("all", list(net.parameters()), 1e-3, 0)]
    plain = ClassifierModule(net, group, 4, epochs=1)
    mixed = ClassifierModule(net, group, 4, epochs=1, batch_mix=ops, mix_seed=3)
    for m in (plain, mixed):
        m.log = lambda *a, **k: None  # no Trainer attached: logging is not under test
    with torch.no_grad():
        hard = plain.training_step((x, y), 0)
        soft = mixed.training_step((x, y), 0)
        again = mixed.training_step((x, y), 0)  # same (seed, step, rank): same draw
        # the mixed loss is the cross-entropy against the soft labels of that draw
        rng = stream(3, "batch-mix", 0, 0)
        xm, ym = ops[int(rng.integers(2))](x, y, rng)
        expected = torch.nn.functional.cross_entropy(net(xm), ym)
    assert soft.item() == pytest.approx(again.item())
    assert soft.item() == pytest.approx(expected.item(), rel=1e-5)
    assert abs(soft.item() - hard.item()) > 0.01  # so the equality above could fail
    assert not torch.allclose(ym.max(1).values, torch.ones(len(y)))  # labels were mixed


def test_default_epochs_reach_the_minimum_steps_on_tiny_sets():
    auto = FinetuneConfig()  # batch 32: 100 images make 3 steps an epoch, 500 make 15
    assert auto.epochs is None
    assert auto.finetune_epochs(100) == 60  # 50 epochs would be 150 steps: raised to 180
    assert auto.finetune_epochs(500) == 50  # 750 steps already
    assert auto.finetune_epochs(10) == 180  # one (partial) batch an epoch
    assert FinetuneConfig(batch_size=8).finetune_epochs(100) == 50  # 12 steps an epoch
    assert FinetuneConfig(epochs=5).finetune_epochs(100) == 5  # an explicit count is kept


def test_folder_with_corrupt_image_is_skipped_and_reported(fmnist_folder, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(fmnist_folder, src)
    bad = next((src / sorted(p.name for p in src.iterdir())[0]).iterdir())
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    data = load_folder(src)
    assert len(data) == 17 and data.skipped and data.skipped[0][0] == str(bad)


class _Stop(Exception):
    pass


class _StopAtEpoch:
    """A Lightning callback that fails at the start of an epoch, as a crash would."""

    def __new__(cls, epoch):
        from lightning.pytorch.callbacks import Callback

        class Stop(Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.current_epoch == epoch:
                    raise _Stop

        return Stop()


@pytest.mark.parametrize("mix", [{}, {"mixup": 0.2, "cutmix": 1.0}], ids=["plain", "mixed"])
def test_resume_continues_exactly(fmnist, tmp_path, mix):
    cfg = FinetuneConfig(
        strategy="full", epochs=4, val_fraction=0.25, patience=0, dropout=0.0, **{**CNN, **mix}
    )
    straight = finetune(fmnist, tmp_path / "a", cfg, progress=False, export=False)
    with pytest.raises(_Stop):
        finetune(
            fmnist, tmp_path / "b", cfg, progress=False, export=False, callbacks=[_StopAtEpoch(2)]
        )
    assert (tmp_path / "b" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "b" / "model.safetensors").exists()  # nothing half-done is saved
    from lightning.pytorch.callbacks import Callback

    class Record(Callback):
        def __init__(self):
            self.epochs = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.epochs.append(trainer.current_epoch)

    record = Record()
    resumed = finetune(
        fmnist, tmp_path / "b", cfg, progress=False, export=False, resume=True, callbacks=[record]
    )
    assert record.epochs == [2, 3]  # it continued; it did not start over
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_an_existing_run_is_not_overwritten_by_mistake(fmnist, tmp_path):
    cfg = FinetuneConfig(strategy="linear", probe_epochs=1, val_fraction=0.25, **CNN)
    finetune(fmnist, tmp_path, cfg, progress=False, export=False)
    with pytest.raises(DataError, match="already holds a run"):
        finetune(fmnist, tmp_path, cfg, progress=False, export=False)
    finetune(fmnist, tmp_path, cfg, progress=False, export=False, overwrite=True)


def test_per_class_draws():
    labels = np.repeat(np.arange(3), [5, 6, 7])
    draws = per_class_draws(labels, 4, 3, seed=0, classes=["a", "b", "c"])
    again = per_class_draws(labels, 4, 3, seed=0, classes=["a", "b", "c"])
    assert all(np.array_equal(a, b) for a, b in zip(draws, again))
    for d in draws:
        assert np.array_equal(np.bincount(labels[d]), [4, 4, 4]) and len(set(d)) == 12
    assert not np.array_equal(draws[0], draws[1])
    with pytest.raises(DataError, match="'a' has 5"):
        per_class_draws(labels, 6, 2, seed=0, classes=["a", "b", "c"])
    with pytest.raises(DataError, match="repeats must be >= 2"):
        per_class_draws(labels, 2, 1, seed=0)


def test_compare_on_a_fixed_test_set_with_a_config_per_split(fmnist, tmp_path):
    ds = fashion_mnist_subset("test")
    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:10] for c in range(4)])
    test = LabelledImages.from_arrays(ds.images[keep], ds.labels[keep], ds.classes[:4], "test")
    base = FinetuneConfig(strategy="full", epochs=1, val_fraction=0, **CNN)
    seen = []

    def per_split(r, part):
        seen.append((r, len(part), part.counts()))
        return replace(base, dropout=0.1)

    configs = {"base": base, "per split": per_split}
    result = compare(fmnist, configs, tmp_path, repeats=2, test=test, train_per_class=5)
    assert [s[:2] for s in seen] == [(0, 20), (1, 20)]
    assert all(set(c.values()) == {5} for _, _, c in seen)
    assert result.design == "fixed test set" and (result.n_train, result.n_test) == (20, 40)
    metrics = json.loads((tmp_path / "base" / "split-1" / "report" / "metrics.json").read_text())
    assert metrics["n"] == 40 and metrics["split"] == "test"
    assert json.loads((tmp_path / "per_split" / "split-1" / "config.json").read_text())["seed"] == 1
    assert "same 40" in result.table()
    weights = tmp_path / "base" / "split-0" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = compare(fmnist, configs, tmp_path, repeats=2, test=test, train_per_class=5)
    assert again.scores == result.scores and weights.stat().st_mtime_ns == stamp
    # another draw is another split: the finished run is not reused for it
    compare(fmnist, configs, tmp_path, repeats=2, test=test, train_per_class=6)
    assert weights.stat().st_mtime_ns != stamp
    with pytest.raises(DataError, match="needs a fixed test set"):
        compare(fmnist, configs, tmp_path, repeats=2, train_per_class=5)


def test_a_synthetic_folder_the_filter_emptied_trains_on_the_reals(fmnist, tmp_path, caplog):
    from transfer.finetuning import split_data

    empty = tmp_path / "variations"
    for name in fmnist.classes:
        (empty / name).mkdir(parents=True)  # what vary_folder leaves when nothing passes
    cfg = FinetuneConfig(backbone="small_cnn", pretrained=False, synthetic=str(empty))
    with caplog.at_level("WARNING"):
        parts = split_data(fmnist, cfg, None, None)
    assert parts.synthetic is None and "holds no synthetic images" in caplog.text


@pytest.mark.parametrize(
    "file,content,message",
    [
        ("config.json", {"dropout": 0.1}, "must be an object with a backbone name"),
        ("config.json", {"backbone": "small_cnn", "dropout": "abc"}, "dropout must be a number"),
        ("labels.json", {"a": 1}, "must be a list of distinct class names"),
        ("labels.json", ["a", "a"], "must be a list of distinct class names"),
        (
            "preprocess.json",
            {
                "input_size": 32,
                "resize_size": 32,
                "mean": [0, 0, 0],
                "std": [0, 0, 0],
                "interpolation": "bilinear",
            },
            "std must be",
        ),
        ("model.safetensors", b"garbage", "is not a readable safetensors file"),
        ("export/model.torchscript.pt", b"garbage", "is not a TorchScript model"),
    ],
)
def test_a_tampered_run_directory_is_one_line(cnn_run, tmp_path, file, content, message):
    """Issue 20 #10/#17: each of these was a traceback from inside json, torch or safetensors."""
    import shutil

    from transfer.errors import RunError
    from transfer.export import Predictor, load_run

    run = tmp_path / "run"
    shutil.copytree(cnn_run.out, run)
    target = run / file
    if isinstance(content, bytes):
        target.write_bytes(content)
    elif file == "config.json":
        target.write_text(
            json.dumps(
                {**json.loads(target.read_text()), **content} if "backbone" in content else content
            )
        )
    else:
        target.write_text(json.dumps(content))
    with pytest.raises(RunError, match=message):
        Predictor(run) if file.startswith("export") else load_run(run)
