"""labkit.data: the embedded digits, torchvision's datasets from local IDX files, tabular sets."""

from __future__ import annotations

import struct
import urllib.error

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from labkit import data
from labkit.data import DATA_ROOT_ENV_VAR, DatasetNotAvailableError


def test_digits5k_is_a_fixed_stratified_split_of_real_digits():
    train, test = data.digits5k(train=True), data.digits5k(train=False)
    assert len(train) == 4000 and len(test) == 1000
    x, y = train.tensors
    assert x.shape == (4000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.99
    assert torch.bincount(y).tolist() == [400] * 10
    assert torch.bincount(test.tensors[1]).tolist() == [100] * 10
    assert not torch.equal(y[:50], y[:50].sort().values), "training set must not be sorted by class"
    again = data.digits5k(train=True)
    assert torch.equal(again.tensors[0], x) and torch.equal(again.tensors[1], y)


def test_digits5k_train_and_test_do_not_overlap():
    train = data.digits5k(train=True).tensors[0].reshape(4000, -1)
    test = data.digits5k(train=False).tensors[0].reshape(1000, -1)
    train_rows = {row.numpy().tobytes() for row in train}
    assert sum(row.numpy().tobytes() in train_rows for row in test) == 0


def test_digits5k_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits5k(test_fraction=1.5)


def _write_idx(root, folder: str, n_train: int = 12, n_test: int = 5) -> None:
    """Write tiny, valid IDX files where torchvision expects them."""
    raw = root / folder / "raw"
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        data.write_idx(raw / f"{prefix}-images-idx3-ubyte",
                       rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        data.write_idx(raw / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))


def test_idx_headers_are_mnists(tmp_path):
    _write_idx(tmp_path, "MNIST", n_train=600)
    raw = tmp_path / "MNIST" / "raw"
    images = (raw / "train-images-idx3-ubyte").read_bytes()
    labels = (raw / "train-labels-idx1-ubyte").read_bytes()
    assert struct.unpack(">HBBIII", images[:16]) == (0, 8, 3, 600, 28, 28)
    assert struct.unpack(">HBBI", labels[:8]) == (0, 8, 1, 600)
    assert len(images) == 16 + 600 * 28 * 28 and len(labels) == 8 + 600


@pytest.mark.parametrize("name,folder", [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST")])
def test_synthetic_images_have_the_real_shape_and_go_through_torchvision(tmp_path, name, folder):
    written = data.write_synthetic_images(name, tmp_path, n_train=600, n_test=100, seed=0)
    assert written["train_images"].shape == (600, 28, 28)
    assert written["test_images"].shape == (100, 28, 28)
    assert written["train_images"].dtype == np.uint8
    assert sorted(np.unique(written["train_labels"]).tolist()) == list(range(10))
    assert all(f.is_file() for f in data.expected_files(name, tmp_path))
    again = data.synthetic_images(600, seed=0, stream=0)  # deterministic
    assert np.array_equal(again[0], written["train_images"])
    means = [written["train_images"][written["train_labels"] == c].mean(0) for c in range(10)]
    assert np.abs(means[0] - means[1]).mean() > 5  # the classes differ: something to learn
    dataset = data.image_dataset(name, train=True, root=tmp_path, download=False)
    assert len(dataset) == 600
    X, y = data.preload(dataset)
    assert torch.equal(X[:, 0], torch.from_numpy(written["train_images"]).float() / 255)
    assert torch.equal(y, torch.from_numpy(written["train_labels"]).long())


def test_real_sizes_by_default():
    """Byte for byte the sizes of the real files: 60,000 + 10,000 images (not written here)."""
    import inspect
    defaults = inspect.signature(data.write_synthetic_images).parameters
    assert (defaults["n_train"].default, defaults["n_test"].default) == (60_000, 10_000)


@pytest.mark.parametrize("name,folder", [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST")])
def test_torchvision_datasets_read_local_idx_files(tmp_path, monkeypatch, name, folder):
    _write_idx(tmp_path, folder)
    monkeypatch.setenv(DATA_ROOT_ENV_VAR, str(tmp_path))
    train = data.image_dataset(name, train=True, download=False)
    test = data.image_dataset(name, train=False, download=False)
    assert len(train) == 12 and len(test) == 5
    x, y = train[3]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y == 3
    X, Y = data.preload(train)
    assert X.shape == (12, 1, 28, 28) and Y.tolist() == [i % 10 for i in range(12)]
    raw = np.frombuffer((tmp_path / folder / "raw" / "train-images-idx3-ubyte").read_bytes()[16:],
                        dtype=np.uint8).reshape(12, 28, 28)
    assert torch.allclose(X[:, 0], torch.from_numpy(raw / 255.0).float())
    batch_x, batch_y = next(iter(DataLoader(train, batch_size=4)))
    assert batch_x.shape == (4, 1, 28, 28)


def test_missing_dataset_names_the_files_and_the_variable(tmp_path):
    with pytest.raises(DatasetNotAvailableError) as info:
        data.image_dataset("fashion-mnist", root=tmp_path / "empty", download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert DATA_ROOT_ENV_VAR in message and "FashionMNIST" in message
    assert "digits5k" in message


def test_a_failed_download_is_an_error_not_a_silent_switch(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    with pytest.raises(DatasetNotAvailableError, match="download failed"):
        data.image_dataset("mnist", root=tmp_path, download=True)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar'"):
        data.image_dataset("cifar")


def test_tabular_standardises_with_training_statistics_only():
    split = data.tabular("breast_cancer")
    assert split.task == "classification" and split.n_features == 30
    assert torch.allclose(split.X_train.mean(0), torch.zeros(30, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(split.X_train.std(0, unbiased=False),
                          torch.ones(30, dtype=torch.float64), atol=1e-10)
    # The test split is transformed with the training statistics, so it is not exactly standard.
    assert not torch.allclose(split.X_test.mean(0), torch.zeros(30, dtype=torch.float64),
                              atol=1e-3)
    raw = data.tabular("breast_cancer", scale=False)
    assert torch.allclose((raw.X_test - split.mean) / split.std, split.X_test)


def test_tabular_regression_and_classification_splits():
    reg = data.tabular("diabetes")
    assert reg.task == "regression" and len(reg.X_train) + len(reg.X_test) == 442
    assert reg.y_train.dtype == torch.float64
    clf = data.tabular("wine")
    assert clf.y_train.dtype == torch.int64 and set(clf.y_test.tolist()) == {0, 1, 2}
    assert torch.equal(data.tabular("wine").X_train, clf.X_train)
    with pytest.raises(ValueError, match="Unknown tabular dataset"):
        data.tabular("boston")
