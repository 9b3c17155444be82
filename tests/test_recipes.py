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



def test_unroll_through_the_recipes_draws_a_recipe_and_network_each_step(monkeypatch):
    """--opt through=recipes: each step trains through one (recipe, ConvNet) pair drawn from the six (epochs cut
    here to keep the test short)."""
    from distill.evaluate import Recipe
    from distill.methods import unroll

    short = [Recipe("none/3", "", 3), Recipe("dsa/4", "dsa", 4), Recipe("dc/5", "dc", 5)]
    monkeypatch.setattr(unroll, "standard_recipes", lambda synset: short)
    seen = []
    original = unroll.train_sgd

    def spy(model, start, images, labels, sgd, rng, augment=None, **kw):
        seen.append((id(model), sgd.epochs))
        return original(model, start, images, labels, sgd, rng, augment=augment, **kw)

    monkeypatch.setattr(unroll, "train_sgd", spy)
    distill.distill(dataset="digits", method="unroll", image_init=str(SET), iterations=8, eval_every=8,
                    options={"through": "recipes", "real_batch": 32}, progress=False, evaluate=False)
    assert len(seen) == 8
    assert len({epochs for _, epochs in seen}) > 1 and len({model for model, _ in seen}) == 2


def test_worst_validation_is_the_lowest_of_every_recipe_on_both_convnets(monkeypatch):
    import distill.run as run_module
    from distill.config import DistillConfig, resolve
    from distill.data import load_task
    from distill.evaluate import Recipe

    monkeypatch.setattr(run_module, "standard_recipes",
                        lambda synset: [Recipe("none/3", "", 3), Recipe("dsa/4", "dsa", 4), Recipe("dc/5", "dc", 5)])
    measured = []
    original = run_module.accuracy
    monkeypatch.setattr(run_module, "accuracy", lambda *a: measured.append(original(*a)) or measured[-1])
    config = DistillConfig(**resolve(dataset="digits", method="dm", validation="worst"))
    validate = run_module.validation_accuracy(config, load_task("digits"))
    score = validate(distill.load(SET))
    assert len(measured) == 6 and score == min(measured)


def test_an_unknown_way_to_unroll_is_refused():
    with pytest.raises(distill.DistillError, match="through must be 'evaluation' or 'recipes'"):
        distill.distill(dataset="digits", method="unroll", image_init=str(SET), options={"through": "all"},
                        progress=False)
