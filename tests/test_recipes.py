"""`distill eval --recipes`: a set under each standard recipe on two ConvNet implementations, the worst marked. Each
row is exactly the standard protocol with that recipe's augmentation and epochs."""

import json
import math
from pathlib import Path

import pytest

import distill
from distill.api import evaluate_recipes
from distill.evaluate import standard_recipes
from test_cli import assert_user_error, cli

SET = Path(__file__).resolve().parents[1] / "benchmarks" / "artifacts" / "digits-frepo-ipc1.safetensors"


@pytest.fixture(scope="module")
def table():
    return evaluate_recipes(SET, n_nets=1, progress=False)


def test_every_recipe_on_both_convnets_and_the_worst_is_the_lowest(table):
    assert [(r.recipe, r.arch) for r in table.rows] == [(recipe, arch) for arch in ("convnet", "convnet_dc")
                                                       for recipe in ("none/300", "dsa/1000", "dc/1000")]
    lowest = min(r.result.accuracy_mean for r in table.rows)
    assert table.worst.result.accuracy_mean == lowest <= table.best.result.accuracy_mean
    epochs = {r.recipe: r.result.detail["sgd"]["epochs"] for r in table.rows}
    assert epochs == {"none/300": 300, "dsa/1000": 1000, "dc/1000": 1000}
    assert {r.result.detail["augment"] for r in table.rows if r.recipe == "none/300"} == {"none"}


def test_a_row_is_the_standard_protocol_with_its_recipe(table):
    row = next(r for r in table.rows if r.recipe == "dsa/1000" and r.arch == "convnet")
    alone = distill.evaluate(SET, protocol="standard", arch="convnet", n_nets=1, augment="dsa", epochs=1000,
                             progress=False)
    assert math.isclose(alone.accuracy_mean, row.result.accuracy_mean, abs_tol=1e-12)


def test_colour_sets_get_crop_and_flip_instead_of_dcs_mnist_augmentation():
    colour = distill.load(SET)
    colour.meta["image_shape"] = [3, 8, 8]
    assert [r.name for r in standard_recipes(colour)] == ["none/300", "dsa/1000", "crop+flip/1000"]
    assert [r.augment for r in standard_recipes(colour)] == ["", "dsa", "crop_flip"]


def test_the_command_line_prints_the_table_and_json(tmp_path):
    done = cli("eval", SET, "--recipes", "--arch", "convnet", "--nets", "1", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert len(found["rows"]) == 3 and found["worst"]["accuracy_mean"] == min(r["accuracy_mean"]
                                                                               for r in found["rows"])
    assert_user_error(cli("eval", SET, "--recipes", "--augment", "dsa"), "drop --augment")
