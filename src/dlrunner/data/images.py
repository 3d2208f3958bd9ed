"""Image dataset builders: each returns ``(X, y)`` with X float32 of shape (N, C, H, W) in [0, 1]
and y int64 of shape (N,).

Like the builders in ``sources``, config files name these with ``_target_`` and their keyword
arguments are the config keys (``data.source.path``, ``data.source.size``, ...). Nothing here
touches the network: ``torchvision_dataset`` reads files already on disk and never downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrunner.data.sources import open_npz
from dlrunner.errors import ConfigError, Problem

Arrays = tuple[np.ndarray, np.ndarray]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


# ------------------------------------------------------------------ a folder of class folders


def class_names(path: str) -> list[str]:
    """The class names of an image folder: its sub-folder names, sorted; label i is names[i].

    Hidden folders (``.ipynb_checkpoints``, ``.git``) are not classes.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = (
            "that is a file; give the folder holding one sub-folder per class" if folder.exists() else "no such folder"
        )
        raise ConfigError(
            Problem(
                "data.source.path", path, what + " (relative paths are relative to the directory you ran dlrun from)"
            )
        )
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise ConfigError(
            Problem(
                "data.source.path",
                path,
                "no class sub-folders there; put each class's images in a sub-folder "
                "named after the class (e.g. cats/, dogs/)",
            )
        )
    return names


def image_folder(path: str, size: list[int] | None = None, grayscale: bool = False) -> Arrays:
    """Images in one sub-folder per class (``path/cats/*.png``, ``path/dogs/*.jpg``).

    Labels follow the sorted sub-folder names (see ``class_names``). Files whose suffix is not one
    of png/jpg/jpeg/bmp/gif are skipped (a README or .DS_Store is not an image). Every image is
    converted to RGB (3 channels) or, with ``grayscale``, to one luminance channel, so a folder
    mixing colour, grayscale and palette images still stacks into one array. ``size`` = [H, W]
    resizes each image (bilinear); without it all images must already share one size.
    """
    from PIL import Image

    target_size = _check_size(size)
    names = class_names(path)
    if len(names) < 2:
        raise ConfigError(
            Problem("data.source.path", path, f"only one class sub-folder ({names[0]}/); a classifier needs at least 2")
        )
    root = Path(path).expanduser()
    files, labels = [], []
    for label, name in enumerate(names):
        found = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ConfigError(
                Problem("data.source.path", path, f"class folder {name}/ holds no images ({', '.join(IMAGE_SUFFIXES)})")
            )
        files += found
        labels += [label] * len(found)

    mode = "L" if grayscale else "RGB"
    pixels = []
    for file in files:
        try:
            with Image.open(file) as image:
                image = image.convert(mode)  # convert() reads the whole file, so a truncated one fails here
                if target_size is not None:
                    # PIL takes (W, H)
                    image = image.resize((target_size[1], target_size[0]), Image.Resampling.BILINEAR)
                pixels.append(np.asarray(image, dtype=np.uint8))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise ConfigError(
                Problem("data.source.path", path, f"cannot read the image {file.relative_to(root)} ({err})")
            ) from None
        if pixels[-1].shape[:2] != pixels[0].shape[:2]:
            (h0, w0), (h1, w1) = pixels[0].shape[:2], pixels[-1].shape[:2]
            raise ConfigError(
                Problem(
                    "data.source.size",
                    size,
                    f"the images differ in size: {files[0].relative_to(root)} is {h0}x{w0}, "
                    f"{file.relative_to(root)} is {h1}x{w1} (HxW); set data.source.size=[H,W] to resize them all",
                )
            )

    X = np.stack(pixels)
    X = X[:, None] if grayscale else X.transpose(0, 3, 1, 2)  # (N, H, W[, C]) -> (N, C, H, W)
    return X.astype(np.float32) / 255.0, np.asarray(labels, dtype=np.int64)


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        height, width = (int(v) for v in size)
        valid = all(int(v) == v and not isinstance(v, bool) for v in size) and height > 0 and width > 0
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ConfigError(
            Problem(
                "data.source.size",
                size,
                "two positive whole numbers [H,W], e.g. data.source.size=[32,32]; or null to keep the images' own size",
            )
        )
    return height, width


# ------------------------------------------------------------------ arrays in an .npz


def npz_images(path: str, x_key: str = "X", y_key: str = "y", channels_last: str | bool = "auto") -> Arrays:
    """Image arrays in an .npz: X of shape (N, H, W), (N, H, W, C) or (N, C, H, W), and labels y (N,).

    (N, H, W) gains a channel axis. With ``channels_last`` "auto", a 4-D X whose last axis has 1, 3
    or 4 entries (gray, RGB, RGBA) and whose second axis does not is read as (N, H, W, C) and moved
    to (N, C, H, W); ``true`` / ``false`` decide it explicitly. uint8 pixels are scaled to [0, 1];
    other types are kept as they are (cast to float32).
    """
    if channels_last not in ("auto", True, False):
        raise ConfigError(
            Problem("data.source.channels_last", channels_last, "auto, true (X is (N,H,W,C)) or false (X is (N,C,H,W))")
        )
    with open_npz(path) as stored:
        for key, name in (("data.source.x_key", x_key), ("data.source.y_key", y_key)):
            if name not in stored.files:
                raise ConfigError(
                    Problem(key, name, f"no array {name!r} in {Path(path).name}; it holds {stored.files}")
                )
        X, y = stored[x_key], stored[y_key]

    if X.ndim == 3:
        X = X[:, None]
    elif X.ndim == 4:
        if channels_last == "auto":
            last, second = X.shape[3] in (1, 3, 4), X.shape[1] in (1, 3, 4)
            if last and second:  # e.g. (N, 3, 4, 4): both readings are plausible, so let the user say
                raise ConfigError(
                    Problem(
                        "data.source.channels_last",
                        "auto",
                        f"{x_key} has shape {X.shape}, which reads as (N,H,W,C) "
                        "or as (N,C,H,W); set data.source.channels_last=true or false",
                    )
                )
            channels_last = last
        if channels_last:
            X = X.transpose(0, 3, 1, 2)
    else:
        raise ConfigError(
            Problem(
                "data.source.x_key",
                x_key,
                f"{x_key} has shape {X.shape}; images must be (N,H,W), (N,H,W,C) or (N,C,H,W)",
            )
        )

    if y.ndim != 1 or len(y) != len(X):
        raise ConfigError(
            Problem(
                "data.source.y_key",
                y_key,
                f"{y_key} has shape {y.shape}; it must hold one label per image, shape ({len(X)},)",
            )
        )
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise ConfigError(
            Problem("data.source.y_key", y_key, f"{y_key} must hold whole-number class labels; it is {y.dtype}")
        )
    X = X.astype(np.float32) / 255.0 if X.dtype == np.uint8 else X.astype(np.float32)
    return np.ascontiguousarray(X), y.astype(np.int64)


# ------------------------------------------------------------------ torchvision's sets, from disk


# name -> (torchvision class, where torchvision looks for the files under root)
TORCHVISION_SETS = {
    "mnist": (
        "MNIST",
        "{root}/MNIST/raw/ holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
        "and t10k-labels-idx1-ubyte (the four .gz files unzipped)",
    ),
    "fashion_mnist": (
        "FashionMNIST",
        "{root}/FashionMNIST/raw/ holding train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (the four .gz files unzipped)",
    ),
    "cifar10": (
        "CIFAR10",
        "{root}/cifar-10-batches-py/ holding data_batch_1 ... data_batch_5, test_batch and batches.meta "
        "(cifar-10-python.tar.gz extracted; torchvision checks their md5 sums)",
    ),
}


def torchvision_dataset(name: str, root: str, train_and_test: bool = True) -> Arrays:
    """MNIST, Fashion-MNIST or CIFAR-10 read by ``torchvision.datasets`` from files already at ``root``.

    Never downloads (``download=False``): these machines have no network. With ``train_and_test``
    the official train and test parts are concatenated (train first), since the runner makes its
    own train/dev/test split; otherwise only the train part is returned.
    """
    if name not in TORCHVISION_SETS:
        raise ConfigError(Problem("data.source.name", name, f"one of {', '.join(TORCHVISION_SETS)}"))
    datasets = _import_torchvision_datasets(name)
    class_name, layout = TORCHVISION_SETS[name]
    folder = Path(root).expanduser()
    parts = []
    for train in (True, False) if train_and_test else (True,):
        try:
            part = getattr(datasets, class_name)(root=str(folder), train=train, download=False)
        except RuntimeError:  # torchvision's "Dataset not found (or corrupted)"
            raise ConfigError(
                Problem(
                    "data.source.root",
                    root,
                    f"no {name} files there; this machine cannot download: put the dataset there "
                    f"(torchvision's layout: {layout.format(root=folder)})",
                )
            ) from None
        except (AssertionError, ValueError, TypeError, OSError, EOFError, KeyError) as err:  # present but malformed
            raise ConfigError(
                Problem(
                    "data.source.root", root, f"the {name} files there cannot be read ({type(err).__name__}: {err})"
                )
            ) from None
        parts.append(part)

    # MNIST-style sets hold a uint8 tensor (N, H, W); CIFAR holds a numpy array (N, H, W, C).
    images = [np.asarray(p.data) for p in parts]
    X = np.concatenate([x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2) for x in images])
    y = np.concatenate([np.asarray(p.targets, dtype=np.int64) for p in parts])
    return X.astype(np.float32) / 255.0, y


def _import_torchvision_datasets(name: str):
    """``torchvision.datasets``, or a ConfigError saying how to get a working torchvision."""
    import torch

    try:
        import torchvision.datasets as datasets
    except ImportError:
        raise ConfigError(
            Problem(
                "data.source.name",
                name,
                f"needs torchvision: pip install torchvision (the release built for "
                f"your torch {torch.__version__}; see the compatibility table at github.com/pytorch/vision)",
            )
        ) from None
    except Exception as err:
        raise ConfigError(
            Problem(
                "data.source.name",
                name,
                f"needs torchvision, which is installed but fails to import "
                f"({type(err).__name__}: {err}); install the build that matches your torch {torch.__version__} "
                "(for a CPU-only torch, the CPU build of torchvision)",
            )
        ) from None
    return datasets
