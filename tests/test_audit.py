"""`augment audit` on tiny real folders: planted duplicates, a leak, a conflict and a flipped
label are found, a clean folder reports none, the cleaned copy never touches DATA."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli import augment

from augmentor.datasets import fashion_mnist_subset
from augmentor.io import write_image_folder
from transfer.audit import audit
from transfer.audit_report import write_clean, write_report
from transfer.errors import DataError

CLASSES = ["bag", "sneaker", "trouser"]  # three classes a probe separates on 15 images each
SIZE = 32  # the network's input: small, the test is about the logic


def _take(split: str, per_class: int, skip: int = 0):
    ds = fashion_mnist_subset(split)
    idx = [ds.classes.index(c) for c in CLASSES]
    images, labels = [], []
    for new, old in enumerate(idx):
        pick = np.flatnonzero(ds.labels == old)[skip : skip + per_class]
        images += [ds.images[i] for i in pick]
        labels += [new] * len(pick)
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    x, y = _take("train", 15)
    write_image_folder(root / "clean", x, y, CLASSES)
    xt, yt = _take("test", 5)
    write_image_folder(root / "test", xt, yt, CLASSES)
    data = root / "data"
    write_image_folder(data, x, y, CLASSES)
    bag = sorted((data / "bag").iterdir())
    (data / "bag" / "exact-copy.png").write_bytes(bag[0].read_bytes())
    buf = io.BytesIO()  # a JPEG copy of another bag: a near-identical image
    Image.open(bag[1]).save(buf, "JPEG", quality=80)
    (data / "bag" / "jpeg-copy.jpg").write_bytes(buf.getvalue())
    leak = sorted((root / "test" / "sneaker").iterdir())[0]
    (data / "sneaker" / "leak.png").write_bytes(leak.read_bytes())
    trouser = sorted((data / "trouser").iterdir())
    (data / "sneaker" / "conflict.png").write_bytes(trouser[0].read_bytes())
    (data / "bag" / "flipped.png").write_bytes(trouser[1].read_bytes())  # a trouser called bag
    return root


@pytest.fixture(scope="module")
def found(folders):
    return audit(folders / "data", folders / "test", image_size=SIZE)


def _names(cluster):
    return {Path(m["path"]).name for m in cluster["members"]}


def test_planted_duplicates_leak_and_conflict_are_found(found):
    clusters = [_names(c) for c in found.clusters]
    assert any({"exact-copy.png"} < c for c in clusters)
    assert any({"jpeg-copy.jpg"} < c for c in clusters)
    (leak,) = [c for c in found.leaks if "leak.png" in _names(c)]
    assert {m["split"] for m in leak["members"]} == {"data", "test"}
    assert [p["kind"] for p in leak["pairs"]] == ["exact"]
    conflicts = [_names(c) for c in found.conflicts]
    assert any("conflict.png" in c for c in conflicts)
    kinds = {p["kind"] for c in found.clusters for p in c["pairs"]}
    assert {"exact", "near-identical"} <= kinds


def test_the_flipped_label_is_the_first_suspect(found):
    # flipped.png is a trouser in bag/; its exact copy in trouser/ is a conflict, and the
    # probe, trained on folds without it, calls it a trouser
    top = found.suspects[0]
    assert Path(top["path"]).name in {"flipped.png", "conflict.png"}
    names = [Path(s["path"]).name for s in found.suspects[:3]]
    assert "flipped.png" in names
    flipped = next(s for s in found.suspects if Path(s["path"]).name == "flipped.png")
    assert (flipped["given"], flipped["suggested"]) == ("bag", "trouser")


def test_a_clean_folder_reports_nothing(folders):
    r = audit(folders / "clean", image_size=SIZE)
    assert r.clusters == [] and r.counts()["leaks"] == 0 and r.outliers == []
    # suspects are candidates to look at: a clean folder has a hard image or two, no more
    assert len(r.suspects) <= 2
    assert r.facts["per_class"] == {c: 15 for c in CLASSES} and r.facts["imbalance"] == 1.0


def test_report_and_json_list_every_finding(found, tmp_path):
    report = write_report(found, tmp_path / "a")
    saved = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert saved["summary"] == found.counts()
    assert len(saved["clusters"]) == len(found.clusters)
    assert all("_index" not in c for c in saved["clusters"])
    text = report.read_text()
    for png in ("leaks.png", "conflicts.png", "duplicates.png", "suspects.png"):
        assert (tmp_path / "a" / png).stat().st_size > 200 and png in text


def _digest(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_write_clean_leaves_data_alone_and_lists_what_it_left_out(found, folders, tmp_path):
    before = _digest(folders / "data")
    made = write_clean(found, tmp_path / "clean")
    assert _digest(folders / "data") == before
    kept = {p.name for p in (tmp_path / "clean").rglob("*") if p.suffix in (".png", ".jpg")}
    assert "leak.png" not in kept and "conflict.png" not in kept
    for cluster in found.duplicates:  # each duplicate cluster keeps one image
        if not cluster["leak"] and not cluster["conflict"]:
            assert len(_names(cluster) & kept) == 1
    listed = (tmp_path / "clean" / "left_out.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in listed]
    assert made["left_out"] == len(rows) and made["kept"] == len(kept)
    assert {"leak", "conflict", "duplicate"} <= {r["why"].split(":")[0].split(" ")[0] for r in rows}
    with pytest.raises(DataError, match="exists"):
        write_clean(found, tmp_path / "clean")
    with pytest.raises(DataError, match="inside DATA"):
        write_clean(found, folders / "data" / "cleaned")


def test_write_clean_is_all_or_nothing(found, folders, tmp_path):
    import shutil

    gone = folders / "data-copy"
    shutil.copytree(folders / "data", gone)
    r = audit(gone, image_size=SIZE)
    sorted((gone / "trouser").iterdir())[-1].unlink()  # a kept image vanishes meanwhile
    with pytest.raises(DataError, match="cannot copy"):
        write_clean(r, tmp_path / "clean")
    assert not (tmp_path / "clean").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_cli_audit_refuses_bad_input_and_reports_unreadable_files(folders, tmp_path):
    same = augment("audit", folders / "clean", "--test", folders / "clean")
    assert same.returncode == 2 and "is DATA itself" in same.stderr
    assert len(same.stderr.strip().splitlines()) == 1
    small = tmp_path / "small"
    x, y = _take("train", 6)
    write_image_folder(small, x, y, CLASSES)
    for p in sorted((small / "bag").iterdir())[1:]:
        p.unlink()  # bag keeps one image: its label cannot be checked
    (small / "sneaker" / "broken.png").write_bytes(b"not a png")
    r = augment("audit", small, "--out", tmp_path / "rep", "--image-size", SIZE)
    assert r.returncode == 3, r.stderr
    assert "label check skipped for bag" in r.stdout and "broken.png" in r.stdout
    assert (tmp_path / "rep" / "report.md").is_file()


def test_the_features_are_cached_for_finetune(folders, tmp_path):
    from transfer.backbones import create_backbone
    from transfer.config import FinetuneConfig
    from transfer.features import FeatureCache
    from transfer.images import load_folder
    from transfer.preprocess import PreprocessModule

    audit(folders / "clean", image_size=SIZE, cache_dir=tmp_path / "cache")
    net = create_backbone("efficientnet_lite0")
    pre = PreprocessModule(FinetuneConfig(image_size=SIZE).preprocessing(net))  # finetune's
    cache = FeatureCache(tmp_path / "cache")
    cache.features(net, pre, load_folder(folders / "clean"))
    assert cache.misses == 0 and cache.hits == 45


def test_near_duplicate_chains_do_not_merge_distinct_images():
    """a ~ b and b ~ c (cosine 0.98) but a and c only 0.92 apart: plain union-find made one
    cluster of all three (on the full Fashion-MNIST, a chain of ~50 distinct pullovers);
    complete linkage keeps a with b and c alone. Exact and near-identical pairs always join."""
    import math

    import torch

    from transfer.audit import cluster_pairs

    def at(deg):
        return [math.cos(math.radians(deg)), math.sin(math.radians(deg)), 0.0]

    # a at 0 degrees, b at 11.5 (cos 0.98), c at 23 (cos 0.98 to b, 0.92 to a), d far away
    unit = torch.tensor([at(0), at(11.5), at(23), [0.0, 0.0, 1.0]])
    sim = unit @ unit.T
    kinds = {
        (0, 1): ("near-duplicate", float(sim[0, 1])),
        (1, 2): ("near-duplicate", float(sim[1, 2])),
    }
    uf = cluster_pairs(kinds, unit, 0.97)
    roots = [uf.find(i) for i in range(4)]
    assert len(set(roots[:3])) == 2 and roots[3] not in roots[:3]
    kinds[(2, 3)] = ("exact", 1.0)  # an exact pair joins whatever the features say
    uf = cluster_pairs(kinds, unit, 0.97)
    assert uf.find(2) == uf.find(3)
