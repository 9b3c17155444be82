"""A user's own data: folders of class sub-folders (with and without a test split, grayscale, colour, mixed) and
.npz files, built here on the fly; each is distilled, evaluated and shown through the command line, and each bad
input is refused in one line, exit code 2, with nothing written."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from test_cli import assert_user_error, cli

import distill
from distill.data import get_spec, load_task
from distill.data.own import TEST_FRACTION, read_own
from distill.errors import DistillError

QUICK = ["--iterations", "3", "--eval-every", "3", "--eval-nets", "1", "--eval-epochs", "4", "--quiet"]


def _picture(label: int, index: int, size: int, mode: str) -> Image.Image:
    """A class is a bright band at a place of its own, so a network can tell the classes apart."""
    rng = np.random.default_rng(100 * label + index)
    pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    pixels[:, 2 * label: 2 * label + 2, label % 3] = 250
    return Image.fromarray(pixels).convert(mode)


def make_folder(root, classes=("ant", "bee", "cat"), per_class=6, size=8, mode="RGB", split=False, suffix=".png"):
    """`root/<class>/<n>.png`, or `root/train/...` and `root/test/...` when `split`."""
    for part, count in ((("train", per_class), ("test", 2)) if split else (("", per_class),)):
        for label, name in enumerate(classes):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _picture(label, i + 50 * (part == "test"), size, mode).save(folder / f"{i}{suffix}")
    return root


def make_npz(path, channels_first=False, **changes):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8), "y_train": np.arange(30) % 3,
              "x_test": rng.integers(0, 256, (9, 8, 8, 3), dtype=np.uint8), "y_test": np.arange(9) % 3,
              "class_names": np.array(["red", "green", "blue"])}
    if channels_first:
        arrays["x_train"], arrays["x_test"] = (arrays[k].transpose(0, 3, 1, 2) for k in ("x_train", "x_test"))
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize("layout", ["rgb-heldout", "gray-split", "npz"])
def test_own_data_is_distilled_evaluated_and_shown_from_the_command_line(tmp_path, layout):
    if layout == "npz":
        data, classes, channels = make_npz(tmp_path / "colours.npz", channels_first=True), ["red", "green", "blue"], 3
    else:
        gray = layout.startswith("gray")
        data = make_folder(tmp_path / "bugs", mode="L" if gray else "RGB", split=layout.endswith("split"))
        classes, channels = ["ant", "bee", "cat"], 1 if gray else 3
    out = tmp_path / "run"
    made = cli("run", "--dataset", data, *QUICK, "--out", out)
    assert made.returncode == 0, made.stderr
    assert "(dm, random init)" in made.stdout  # a user's data runs DM unless told otherwise
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["dataset"] == str(data.absolute())
    assert summary["data"]["classes"] == classes
    shown = cli("show", out / "synset.safetensors")
    assert shown.returncode == 0, shown.stderr
    assert f"classes:     {', '.join(classes)}" in shown.stdout
    assert f"images:      [3, {channels}, 8, 8]" in shown.stdout
    measured = cli("eval", out / "synset.safetensors", "--nets", "1", "--epochs", "4", "--json")
    assert measured.returncode == 0, measured.stderr
    assert json.loads(measured.stdout)["n_nets"] == 1


def test_a_folder_without_a_test_split_holds_out_a_seeded_stratified_fraction(tmp_path):
    data = read_own(make_folder(tmp_path / "bugs", per_class=10), progress=False)
    assert np.bincount(data.test_y).tolist() == [round(TEST_FRACTION * 10)] * 3
    assert np.bincount(data.train_y).tolist() == [10 - round(TEST_FRACTION * 10)] * 3
    assert "20% of each class, seed 0" in data.test_split
    again = read_own(tmp_path / "bugs", progress=False)
    assert np.array_equal(data.test_x, again.test_x)  # the same split every time


def test_decoded_images_are_cached_and_decoded_again_when_a_file_changes(tmp_path):
    root = make_folder(tmp_path / "bugs", split=True)
    cache = tmp_path / "cache"
    first = read_own(root, cache=cache, progress=False)
    cached = list((cache / "decoded").glob("*.npz"))
    assert len(cached) == 1
    from distill.data import own
    own._MEMORY.clear()  # as a new process would
    assert np.array_equal(read_own(root, cache=cache, progress=False).train_x, first.train_x)
    changed = root / "train" / "ant" / "0.png"
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # a new modification time, whatever the file system's resolution
    own._MEMORY.clear()
    after = read_own(root, cache=cache, progress=False)
    assert (after.train_x[0] == 7).all() and not (first.train_x[0] == 7).all()


def test_a_folder_mixing_grayscale_and_colour_is_read_as_rgb_and_says_so(tmp_path):
    root = make_folder(tmp_path / "mixed")
    _picture(0, 99, 8, "L").save(root / "ant" / "gray.png")
    with pytest.warns(UserWarning, match="mixes grayscale and colour images; all are read as RGB"):
        data = read_own(root, progress=False)
    assert data.channels == 3
    both = np.concatenate([data.train_x, data.test_x])
    assert any((x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all() for x in both)  # the gray one


def test_image_size_resizes_and_centre_crops_to_a_square(tmp_path):
    root = tmp_path / "wide"
    for label, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            pixels = np.zeros((10, 20, 3), dtype=np.uint8)
            pixels[:, :5] = 255  # the left quarter is cut by the centre crop
            pixels[:, 5:15, label] = 200
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    with pytest.raises(DistillError, match="not square and of one size.*--image-size"):
        get_spec(str(root))
    task = load_task(str(root), image_size=6)
    assert task.image_shape == (3, 6, 6)
    data = read_own(root, image_size=6, progress=False)
    kept = data.train_x[data.train_y == 1]
    # cropped, not squashed: the white quarter is gone (a squash would keep it at 255), the band fills the picture
    assert kept[..., 0].max() < 100 and kept[..., 1].min() > 150
    with pytest.raises(DistillError, match="--image-size resizes your own images"):
        get_spec("digits", image_size=6)


def test_an_npz_in_channels_first_layout_reads_as_the_same_images(tmp_path):
    last = read_own(make_npz(tmp_path / "last.npz"), progress=False)
    first = read_own(make_npz(tmp_path / "first.npz", channels_first=True), progress=False)
    assert np.array_equal(last.train_x, first.train_x) and first.class_names == ("red", "green", "blue")


def test_the_api_takes_a_path_and_records_where_the_test_split_came_from(tmp_path):
    root = make_folder(tmp_path / "bugs")
    run = distill.distill(dataset=str(root), iterations=2, eval_every=2, progress=False, evaluate=False)
    assert run.synset.meta["class_names"] == ["ant", "bee", "cat"]
    assert "held out from the training images" in run.synset.meta["data"]["test_split"]
    assert run.synset.meta["mean"] == pytest.approx(list(get_spec(str(root)).mean))
    assert torch.isfinite(run.synset.images).all()


def _truncated(root):
    make_folder(root)
    whole = (root / "bee" / "1.png").read_bytes()
    (root / "bee" / "1.png").write_bytes(whole[: len(whole) // 2])
    return root, "bee/1.png: not a readable image"


def _empty_class(root):
    make_folder(root)
    (root / "dog").mkdir()
    return root, "class folder 'dog' holds no images"


def _single_class(root):
    make_folder(root, classes=("ant",))
    return root, "only one class ('ant')"


def _no_images(root):
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "readme.txt").write_text("no pictures here")
    return root, "holds no images"


def _empty_folder(root):
    root.mkdir()
    return root, "no images found"


def _test_class_unknown(root):
    make_folder(root, split=True)
    make_folder(root / "test", classes=("dog",), per_class=2)
    return root, "classes 'dog' have no training images"


def _npz_label_out_of_range(root):
    return make_npz(root.with_suffix(".npz"), y_test=np.array([0, 1, 2, 3, 0, 1, 2, 0, 1])), \
        "y_test runs from 0 to 3, outside the classes 0..2"


def _npz_labels_wrong_length(root):
    return make_npz(root.with_suffix(".npz"), y_train=np.arange(29) % 3), \
        "y_train has shape [29], expected one label per image of x_train ([30])"


def _npz_not_uint8(root):
    return make_npz(root.with_suffix(".npz"), x_train=np.zeros((30, 8, 8, 3), dtype=np.float32)), \
        "x_train is float32; images must be uint8"


def _npz_missing_arrays(root):
    return make_npz(root.with_suffix(".npz"), x_test=None, y_test=None), "missing x_test, y_test"


def _npz_test_class_unknown(root):
    return make_npz(root.with_suffix(".npz"), y_train=np.arange(30) % 2, class_names=None), \
        "y_test holds classes [2] that y_train lacks"


def _npz_single_class(root):
    return make_npz(root.with_suffix(".npz"), y_train=np.zeros(30, dtype=np.int64), class_names=None,
                    y_test=np.zeros(9, dtype=np.int64)), "y_train holds only one class"


@pytest.mark.parametrize("make_bad", [_truncated, _empty_class, _single_class, _no_images, _empty_folder,
                                      _test_class_unknown, _npz_label_out_of_range, _npz_labels_wrong_length,
                                      _npz_not_uint8, _npz_missing_arrays, _npz_test_class_unknown,
                                      _npz_single_class])
def test_bad_own_data_is_one_line_exit_2_and_nothing_written(tmp_path, make_bad):
    data, fragment = make_bad(tmp_path / "data")
    before = sorted(p for p in tmp_path.rglob("*"))
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    for command in (["run", "--dataset", data, *QUICK, "--out", out], ["data", data]):
        assert_user_error(cli(*command, env={"DISTILL_CACHE": str(cache)}), fragment)
    assert not out.exists() and not cache.exists()
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_zca_whitening_shrinks_every_direction_as_its_regularisation_says():
    """x @ W has second moments U diag(s / (s + r)) U^T: each direction of the training images keeps the share
    s / (s + r) of unit variance (r = 0.1 x the mean eigenvalue), checked against numpy's own eigendecomposition."""
    from distill.data import ZCA_REGULARISATION, zca_whitening

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(400, 2, 3, 3, generator=generator) * torch.linspace(0.1, 3.0, 18).view(1, 2, 3, 3)
    images[:, 1] += 0.5 * images[:, 0]  # correlated channels
    whitening = zca_whitening(images)
    flat = images.flatten(1).double().numpy()
    second = flat.T @ flat / len(flat)
    s, u = np.linalg.eigh(second)
    expected = (u * (s / (s + ZCA_REGULARISATION * s.mean()))) @ u.T
    whitened = flat @ whitening.double().numpy()
    # W is float32: its entries are off by 2^-24 relatively, which moves these moments by about 1e-6 (18 terms of
    # order 1); a W with another regularisation (0.05 or 0.2) misses them by more than 1e-2
    assert np.abs(whitened.T @ whitened / len(flat) - expected).max() < 1e-4
    assert torch.allclose(whitening, whitening.T, atol=1e-6)  # ZCA is symmetric: whitening without a rotation


def test_a_zca_set_stores_its_matrix_evaluates_with_it_and_draws_unwhitened(tmp_path):
    root = make_folder(tmp_path / "bugs", per_class=8)
    run = distill.distill(dataset=str(root), zca=True, iterations=2, eval_every=2, progress=False, evaluate=False,
                          out=tmp_path / "run")
    stored = distill.load(tmp_path / "run" / "synset.safetensors")
    task = load_task(str(root), zca=True)
    assert torch.equal(stored.zca, task.zca) and stored.zca.shape == (3 * 8 * 8, 3 * 8 * 8)
    assert "zca" in stored.meta["data"]
    # the test split as eval sees it: the plain split whitened with the set's own matrix
    from distill.run import task_of
    plain = load_task(str(root))
    seen = task_of(stored, None, torch.device("cpu"))
    assert torch.allclose(seen.test_x.flatten(1), plain.test_x.flatten(1) @ stored.zca, atol=1e-5)
    # pictures: un-whitened back to the normalised images, so a real starting image comes back as it was read
    real = plain.train_x[:3]
    whitened = _set_like(real.flatten(1) @ task.zca, run.synset)
    assert torch.allclose(whitened.unnormalised_images(), _set_like(real, run.synset, zca=False)
                          .unnormalised_images(), atol=1e-3)
    with pytest.raises(DistillError, match="--clamp-pixels keeps pixels in"):
        distill.distill(dataset=str(root), zca=True, clamp_pixels=True, progress=False, evaluate=False)


def _set_like(images, like, zca=True):
    from distill.synset import SyntheticSet

    return SyntheticSet(images.view(-1, *like.images.shape[1:]), like.labels[:len(images)], dict(like.meta),
                        zca=like.zca if zca else None)
