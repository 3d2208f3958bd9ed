"""Image dataset builders (dlrunner.data.images) and mini-batch augmentation (dlrunner.data.augment)."""

from __future__ import annotations

import itertools
import os
import pickle
import struct
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dlrunner.data.augment import build_augmenter, random_crop, rotate
from dlrunner.data.images import class_names, image_folder, npz_images, torchvision_dataset
from dlrunner.errors import ConfigError


def problem(err: pytest.ExceptionInfo, index: int = 0):
    return err.value.problems[index]


# ====================================================================== image_folder


def write_image(path, pixels: np.ndarray, **save_args) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **save_args)


@pytest.fixture
def pets(tmp_path):
    """cat/ (2 RGB images) and dog/ (1), 4x5 pixels, plus things that are not images or classes."""
    rng = np.random.default_rng(0)
    images = {name: rng.integers(0, 256, (4, 5, 3), dtype=np.uint8) for name in ("cat/a.png", "cat/b.png", "dog/c.png")}
    for name, pixels in images.items():
        write_image(tmp_path / "pets" / name, pixels)
    (tmp_path / "pets" / "dog" / "README.txt").write_text("not an image")
    (tmp_path / "pets" / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    (tmp_path / "pets" / "notes.txt").write_text("a file at the top: not a class")
    return tmp_path / "pets", images


def test_image_folder_reads_pixels_and_labels(pets):
    folder, images = pets
    X, y = image_folder(str(folder))
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.shape == (3, 3, 4, 5)
    assert y.tolist() == [0, 0, 1]  # sorted folders: cat=0, dog=1; files sorted within a class
    expected = np.stack([images[n] for n in ("cat/a.png", "cat/b.png", "dog/c.png")]).transpose(0, 3, 1, 2) / 255.0
    np.testing.assert_allclose(X, expected, atol=1e-7)
    assert class_names(str(folder)) == ["cat", "dog"]


def test_image_folder_grayscale_and_other_formats(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    write_image(tmp_path / "a" / "x.png", np.stack([gray] * 3, axis=-1))  # RGB with R=G=B: luminance is exact
    write_image(tmp_path / "a" / "y.bmp", gray)
    write_image(tmp_path / "b" / "z.gif", gray)
    write_image(tmp_path / "b" / "w.JPG", np.stack([gray] * 3, axis=-1), format="JPEG", quality=95)
    X, y = image_folder(str(tmp_path), grayscale=True)
    assert X.shape == (4, 1, 4, 5) and y.tolist() == [0, 0, 1, 1]
    for i in (0, 1, 3):  # png, bmp, gif are lossless (b/ sorts w.JPG before z.gif)
        np.testing.assert_allclose(X[i, 0], gray / 255.0, atol=1e-7)
    np.testing.assert_allclose(X[2, 0], gray / 255.0, atol=0.05)  # JPEG: lossy
    X_rgb, _ = image_folder(str(tmp_path))  # without grayscale every image becomes 3 channels
    assert X_rgb.shape == (4, 3, 4, 5)


def test_image_folder_resizes_to_size(tmp_path):
    write_image(tmp_path / "a" / "big.png", np.full((10, 12, 3), 200, dtype=np.uint8))
    write_image(tmp_path / "b" / "small.png", np.full((3, 2, 3), 50, dtype=np.uint8))
    X, _ = image_folder(str(tmp_path), size=[6, 4])
    assert X.shape == (2, 3, 6, 4)
    np.testing.assert_allclose(X[0], 200 / 255.0, atol=1e-6)  # a flat colour stays flat under bilinear resizing
    np.testing.assert_allclose(X[1], 50 / 255.0, atol=1e-6)


def test_image_folder_different_sizes_need_size(tmp_path):
    write_image(tmp_path / "a" / "big.png", np.zeros((10, 12, 3), dtype=np.uint8))
    write_image(tmp_path / "b" / "small.png", np.zeros((3, 2, 3), dtype=np.uint8))
    with pytest.raises(ConfigError) as err:
        image_folder(str(tmp_path))
    assert problem(err).key == "data.source.size"
    assert "differ in size" in str(err.value) and "data.source.size=[H,W]" in str(err.value)
    assert "10x12" in str(err.value) and "3x2" in str(err.value)


@pytest.mark.parametrize("size", [[4], [0, 4], [2.5, 4], "32", [True, 4]])
def test_image_folder_bad_size(pets, size):
    with pytest.raises(ConfigError) as err:
        image_folder(str(pets[0]), size=size)
    assert problem(err).key == "data.source.size" and "[H,W]" in str(err.value)


def test_image_folder_errors(tmp_path):
    def error(path) -> str:
        with pytest.raises(ConfigError) as err:
            image_folder(str(path))
        assert problem(err).key == "data.source.path"
        return str(err.value)

    assert "no such folder" in error(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"x")
    assert "that is a file" in error(tmp_path / "file.png")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no class sub-folders" in error(empty)

    one = tmp_path / "one"
    write_image(one / "cat" / "a.png", np.zeros((2, 2, 3), dtype=np.uint8))
    assert "at least 2" in error(one)

    no_images = tmp_path / "no_images"
    write_image(no_images / "cat" / "a.png", np.zeros((2, 2, 3), dtype=np.uint8))
    (no_images / "dog").mkdir()
    (no_images / "dog" / "notes.txt").write_text("hi")
    assert "dog/ holds no images" in error(no_images)

    broken = tmp_path / "broken"
    write_image(broken / "cat" / "a.png", np.zeros((2, 2, 3), dtype=np.uint8))
    (broken / "dog").mkdir()
    (broken / "dog" / "bad.png").write_bytes(b"this is not a png")
    message = error(broken)
    assert "cannot read the image" in message and os.path.join("dog", "bad.png") in message


def test_image_folder_truncated_image(tmp_path):
    write_image(tmp_path / "a" / "ok.png", np.zeros((8, 8, 3), dtype=np.uint8))
    write_image(tmp_path / "b" / "cut.png", np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    data = (tmp_path / "b" / "cut.png").read_bytes()
    (tmp_path / "b" / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match=r"cut.png"):
        image_folder(str(tmp_path))


# ====================================================================== npz_images


def save_npz(tmp_path, **arrays) -> str:
    path = tmp_path / "images.npz"
    np.savez(path, **arrays)
    return str(path)


def test_npz_images_layouts(tmp_path):
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 1])
    gray = rng.integers(0, 256, (4, 6, 5), dtype=np.uint8)
    X, labels = npz_images(save_npz(tmp_path, X=gray, y=y))
    assert X.shape == (4, 1, 6, 5) and X.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_allclose(X[:, 0], gray / 255.0, atol=1e-7)
    assert labels.tolist() == y.tolist()

    rgb = rng.integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    X, _ = npz_images(save_npz(tmp_path, X=rgb, y=y))  # auto: last axis of 3 -> channels last
    np.testing.assert_allclose(X, rgb.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    X, _ = npz_images(save_npz(tmp_path, X=rgb, y=y), channels_last=True)
    assert X.shape == (4, 3, 6, 5)
    X, _ = npz_images(save_npz(tmp_path, X=rgb, y=y), channels_last=False)
    assert X.shape == (4, 6, 5, 3)

    first = rng.normal(size=(4, 3, 6, 5))  # channels first, float: kept as is
    X, _ = npz_images(save_npz(tmp_path, X=first, y=y))
    np.testing.assert_allclose(X, first.astype(np.float32))

    X, labels = npz_images(save_npz(tmp_path, images=gray, labels=y.astype(float)), x_key="images", y_key="labels")
    assert X.shape == (4, 1, 6, 5) and labels.dtype == np.int64


def test_npz_images_errors(tmp_path):
    y = np.zeros(4, dtype=np.int64)
    with pytest.raises(ConfigError, match="no such file"):
        npz_images(str(tmp_path / "missing.npz"))

    with pytest.raises(ConfigError) as err:
        npz_images(save_npz(tmp_path, images=np.zeros((4, 2, 2)), y=y))
    assert problem(err).key == "data.source.x_key" and "'images'" in str(err.value) and "'y'" in str(err.value)

    with pytest.raises(ConfigError) as err:
        npz_images(save_npz(tmp_path, X=np.zeros((4, 2, 2))), y_key="labels")
    assert problem(err).key == "data.source.y_key" and "'X'" in str(err.value)

    with pytest.raises(ConfigError) as err:
        npz_images(save_npz(tmp_path, X=np.zeros((4, 64)), y=y))
    assert problem(err).key == "data.source.x_key" and "(N,H,W)" in str(err.value)

    with pytest.raises(ConfigError) as err:
        npz_images(save_npz(tmp_path, X=np.zeros((4, 3, 4, 4)), y=y))  # (N,C,H,W) or (N,H,W,C)? cannot tell
    assert problem(err).key == "data.source.channels_last"

    with pytest.raises(ConfigError, match="one label per image"):
        npz_images(save_npz(tmp_path, X=np.zeros((4, 2, 2)), y=np.zeros(3)))
    with pytest.raises(ConfigError, match="whole-number"):
        npz_images(save_npz(tmp_path, X=np.zeros((4, 2, 2)), y=np.full(4, 0.5)))
    with pytest.raises(ConfigError) as err:
        npz_images(save_npz(tmp_path, X=np.zeros((4, 2, 2)), y=y), channels_last="yes")
    assert problem(err).key == "data.source.channels_last"


# ====================================================================== torchvision_dataset

_shim_library = None  # kept alive: dropping a torch.library.Library removes what it defined


@pytest.fixture(scope="module")
def tv_datasets():
    """torchvision.datasets, or skip when torchvision is absent.

    A CUDA build of torchvision next to a CPU-only torch (what PyPI's wheel gives here) cannot
    load its C++ ops, and torchvision 0.28's import then fails registering fake kernels for the
    missing ops torchvision::nms and qnms. The datasets need none of those ops, so for the test we
    declare the two ops' schemas and import again.
    """
    global _shim_library
    try:
        import torchvision.datasets

        return torchvision.datasets
    except ImportError:
        pytest.skip("torchvision is not installed")
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    _shim_library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        _shim_library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision.datasets

    return torchvision.datasets


def write_idx(path, array: np.ndarray) -> None:
    """An idx (LeCun) file as torchvision's read_sn3_pascalvincent_tensor reads it: two zero bytes,
    the type (0x08 = uint8), the number of dimensions, each dimension as a big-endian int32, the data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake_mnist(root, folder: str, n_train: int = 6, n_test: int = 4):
    """torchvision's MNIST layout: root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte."""
    rng = np.random.default_rng(1)
    parts = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", labels)
        parts[prefix] = (images, labels)
    return parts


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_mnist_from_disk(tv_datasets, tmp_path, name, folder):
    parts = write_fake_mnist(tmp_path, folder)
    X, y = torchvision_dataset(name, str(tmp_path))
    assert X.shape == (10, 1, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    images = np.concatenate([parts["train"][0], parts["t10k"][0]])  # train part first, then test
    np.testing.assert_allclose(X[:, 0], images / 255.0, atol=1e-7)
    assert y.tolist() == np.concatenate([parts["train"][1], parts["t10k"][1]]).tolist()

    X, y = torchvision_dataset(name, str(tmp_path), train_and_test=False)
    assert X.shape == (6, 1, 28, 28) and y.tolist() == parts["train"][1].tolist()


def test_torchvision_cifar10_from_disk(tv_datasets, tmp_path, monkeypatch):
    # Real CIFAR files are checked against md5 sums; accept fake ones that merely exist.
    monkeypatch.setattr(tv_datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(2)
    rows, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, batch_labels = rng.integers(0, 256, (2, 3 * 32 * 32), dtype=np.uint8), rng.integers(0, 10, 2).tolist()
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": batch_labels}))
        rows.append(data)
        labels += batch_labels
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))

    X, y = torchvision_dataset("cifar10", str(tmp_path))
    assert X.shape == (12, 3, 32, 32) and y.tolist() == labels
    # Each stored row is the red plane, then green, then blue: exactly (C, H, W) once reshaped.
    np.testing.assert_allclose(X, np.concatenate(rows).reshape(-1, 3, 32, 32) / 255.0, atol=1e-7)


@pytest.mark.parametrize(
    "name, layout",
    [("mnist", "MNIST/raw/"), ("fashion_mnist", "FashionMNIST/raw/"), ("cifar10", "cifar-10-batches-py/")],
)
def test_torchvision_missing_files(tv_datasets, tmp_path, name, layout):
    with pytest.raises(ConfigError) as err:
        torchvision_dataset(name, str(tmp_path))
    assert problem(err).key == "data.source.root" and problem(err).value == str(tmp_path)
    message = str(err.value)
    assert f"no {name} files there; this machine cannot download" in message and layout in message
    assert not any(tmp_path.iterdir())  # nothing downloaded, no folders made


def test_torchvision_unknown_name():
    with pytest.raises(ConfigError) as err:
        torchvision_dataset("imagenet", "/data")
    assert problem(err).key == "data.source.name" and "mnist, fashion_mnist, cifar10" in str(err.value)


def test_torchvision_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` raise ImportError
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ConfigError) as err:
        torchvision_dataset("mnist", "/data")
    assert problem(err).key == "data.source.name" and "needs torchvision: pip install torchvision" in str(err.value)


def test_torchvision_installed_but_broken(monkeypatch, tmp_path):
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    for module in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, module)  # restored afterwards
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConfigError) as err:
        torchvision_dataset("mnist", "/data")
    assert problem(err).key == "data.source.name"
    assert "fails to import" in str(err.value) and "torchvision::nms" in str(err.value)


# ====================================================================== augmentation


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_nothing_on_gives_none():
    assert build_augmenter(input_shape=(64,)) is None
    assert build_augmenter(False, 0, 0.0, 0.0, 0.0, input_shape=(1, 8, 8)) is None


def test_hflip_flips_about_half_exactly():
    x = torch.randn(200, 2, 4, 5)
    out = build_augmenter(hflip=True, input_shape=(2, 4, 5))(x, seeded())
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ flipped).all())  # each example is exactly itself or its mirror image
    assert 70 < int(flipped.sum()) < 130


def shifted(example: torch.Tensor, shifts: tuple) -> torch.Tensor:
    """example moved by `shifts` along its spatial axes, zeros coming in from the edge."""
    out = example
    for axis, s in enumerate(shifts, start=1):
        out = torch.roll(out, s, dims=axis)
        index = [slice(None)] * out.dim()
        index[axis] = slice(0, s) if s > 0 else slice(out.shape[axis] + s, None)
        if s:
            out[tuple(index)] = 0
    return out


@pytest.mark.parametrize("shape", [(2, 6, 7), (3, 12)])
def test_crop_gives_shifted_copies(shape):
    p = 2
    x = torch.rand(40, *shape) + 1  # no zeros in the input, so zeros in the output come from the padding
    out = build_augmenter(crop_padding=p, input_shape=shape)(x, seeded())
    assert out.shape == x.shape
    grid = list(itertools.product(range(-p, p + 1), repeat=len(shape) - 1))  # every shift within the padding
    used = set()
    for example, result in zip(x, out):
        match = [s for s in grid if torch.equal(shifted(example, s), result)]
        assert len(match) == 1, "each output is its input shifted by at most the padding"
        used.add(match[0])
    assert len(used) >= min(len(grid), 10)  # the shift is drawn per example


def test_crop_on_volumes():
    x = torch.rand(3, 1, 4, 5, 6)
    out = random_crop(x, 1, seeded())
    assert out.shape == x.shape


def test_rotation_keeps_shape_and_changes_the_image():
    x = torch.rand(8, 3, 9, 11)
    np.testing.assert_allclose(rotate(x, torch.zeros(8)), x, atol=1e-6)  # angle 0: the image itself
    almost_none = build_augmenter(rotation=1e-4, input_shape=(3, 9, 11))(x, seeded())
    np.testing.assert_allclose(almost_none, x, atol=1e-4)
    out = build_augmenter(rotation=30, input_shape=(3, 9, 11))(x, seeded())
    assert out.shape == x.shape and (out - x).abs().amax(dim=(1, 2, 3)).min() > 1e-2


def test_rotation_by_90_and_180_degrees_is_exact():
    square = torch.rand(2, 1, 6, 6)
    np.testing.assert_allclose(rotate(square, torch.full((2,), 90.0)), torch.rot90(square, 1, dims=(2, 3)), atol=1e-5)
    wide = torch.rand(2, 1, 4, 7)  # non-square: no shear from the normalised coordinates
    np.testing.assert_allclose(rotate(wide, torch.full((2,), 180.0)), wide.flip(-1).flip(-2), atol=1e-5)


def test_color_shift_is_constant_per_channel_and_example():
    x = torch.rand(500, 3, 4, 4)
    out = build_augmenter(color_shift=0.2, input_shape=(3, 4, 4))(x, seeded())
    delta = out - x
    spread = delta.amax(dim=(2, 3)) - delta.amin(dim=(2, 3))
    assert float(spread.max()) < 1e-5  # one offset per (example, channel)
    offsets = delta[:, :, 0, 0]
    assert abs(float(offsets.std()) - 0.2) < 0.02
    assert not torch.allclose(offsets[:, 0], offsets[:, 1])  # drawn per channel, not one per example


def test_noise_has_the_right_std_on_flat_features():
    x = torch.ones(2000, 50)
    out = build_augmenter(noise_std=0.3, input_shape=(50,))(x, seeded())
    noise = out - x
    assert abs(float(noise.std()) - 0.3) < 0.01 and abs(float(noise.mean())) < 0.01


def test_same_seed_same_draws_and_input_untouched():
    augment = build_augmenter(True, 2, 15.0, 0.1, 0.05, input_shape=(3, 8, 8))
    x = torch.rand(16, 3, 8, 8)
    before = x.clone()
    a, b, c = augment(x, seeded(7)), augment(x, seeded(7)), augment(x, seeded(8))
    assert torch.equal(x, before)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.data_ptr() != x.data_ptr()
    for single in ({"hflip": True}, {"crop_padding": 1}, {"noise_std": 0.1}):  # each alone returns a new tensor too
        assert build_augmenter(**single, input_shape=(3, 8, 8))(x, seeded()).data_ptr() != x.data_ptr()
    assert torch.equal(x, before)


def test_flat_input_needs_a_shape():
    with pytest.raises(ConfigError) as err:
        build_augmenter(hflip=True, crop_padding=2, noise_std=0.1, input_shape=(64,))
    keys = [p.key for p in err.value.problems]
    assert keys == ["data.augment.hflip", "data.augment.crop_padding"]  # noise works on flat features
    assert "data.shape=[1,8,8]" in str(err.value)
    with pytest.raises(ConfigError, match=r"data.shape=\[3,4,4\]"):
        build_augmenter(color_shift=0.1, input_shape=(48,))
    with pytest.raises(ConfigError, match=r"data.shape=\[1,40\] for a 1-channel signal"):
        build_augmenter(hflip=True, input_shape=(40,))
    with pytest.raises(ConfigError, match=r"data.shape=\[C,H,W\] with C\*H\*W = 40"):
        build_augmenter(rotation=10, input_shape=(40,))


def test_rotation_needs_2d_images():
    with pytest.raises(ConfigError) as err:
        build_augmenter(rotation=10, input_shape=(1, 40))
    assert problem(err).key == "data.augment.rotation" and "(C,H,W)" in str(err.value)
    # signals are fine otherwise
    assert build_augmenter(hflip=True, crop_padding=3, color_shift=0.1, input_shape=(1, 40)) is not None


@pytest.mark.parametrize(
    "setting, value",
    [
        ("crop_padding", -1),
        ("crop_padding", 1.5),
        ("rotation", -5.0),
        ("rotation", 200),
        ("color_shift", -0.1),
        ("noise_std", -1.0),
        ("noise_std", float("nan")),
        ("hflip", "yes"),
    ],
)
def test_bad_values(setting, value):
    with pytest.raises(ConfigError) as err:
        build_augmenter(**{setting: value}, input_shape=(1, 8, 8))
    assert problem(err).key == f"data.augment.{setting}"


def test_the_trainer_augments_training_batches_only(tmp_path):
    """With a learning rate too small to move the weights, heavy input noise changes the training
    mini-batch losses but not one digit of the dev evaluation: dev is never augmented."""
    from helpers import read_metrics, train_in_process

    runs = {}
    for name, noise in (("plain", 0), ("noisy", 50)):
        folder = tmp_path / name
        summary = train_in_process(
            folder,
            "data=digits_images",
            "model=cnn",
            "trainer=quick",
            "trainer.steps=3",
            "trainer.eval_every=3",
            "optimizer=sgd",
            "optimizer.lr=1e-12",
            "optimizer.batch_size=64",
            f"data.augment.noise_std={noise}",
        )
        runs[name] = (summary, read_metrics(folder / "run")[-1])
    (plain, plain_record), (noisy, noisy_record) = runs["plain"], runs["noisy"]
    assert noisy_record["train_loss"] > 2 * plain_record["train_loss"]  # the mini-batches were changed
    assert noisy["metrics"]["dev"]["loss"] == pytest.approx(plain["metrics"]["dev"]["loss"], rel=1e-6)
    # evaluation: clean data
    assert noisy["metrics"]["train"]["loss"] == pytest.approx(plain["metrics"]["train"]["loss"], rel=1e-6)
