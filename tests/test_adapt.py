"""`distill adapt`: distilled target images whose learned steps move networks pretrained on another dataset (USPS,
resized) to the target (the bundled digits), measured on held-out pretrained networks beside the baselines."""

import pytest
import torch

import distill
from distill.api import AdaptConfig, adapt
from distill.errors import DistillError
from test_cli import assert_user_error, cli

TINY = {"source": "usps", "dataset": "digits", "iterations": 20, "eval_every": 10, "source_nets": 3, "eval_nets": 3,
        "nets_per_step": 2}


def test_adapted_networks_beat_the_unadapted_ones_and_the_set_records_it(tmp_path):
    run = adapt(out=tmp_path / "a", progress=False, **TINY)
    r = run.results
    assert r["adapted"]["n_nets"] == 3 and r["images"] == 100 and r["gradient_steps"] == 30
    assert r["adapted"]["mean"] > r["no_adaptation"]["mean"] + 0.05
    assert r["random_real_fine_tuned"]["lr"] in (0.001, 0.003, 0.01, 0.03, 0.1)
    stored = distill.load(tmp_path / "a" / "synset.safetensors")
    assert stored.meta["init"] == "loaded" and stored.meta["adapt"] == {"source": "usps", "known_weights": False}
    assert torch.equal(stored.images, run.synset.images)
    shown = cli("show", tmp_path / "a" / "synset.safetensors")
    assert "adaptation:" in shown.stdout and "held-out pretrained networks" in shown.stdout
    assert_user_error(cli("eval", tmp_path / "a" / "synset.safetensors"), "adapts networks pretrained on usps")


@pytest.mark.parametrize(("options", "fragment"), [
    ({"source": "digits"}, "are both digits"),
    ({"source": "cifar10"}, "need the same classes and channels"),
    ({"nets_per_step": 5, "source_nets": 3}, "cannot exceed --source-nets"),
])
def test_bad_adaptations_are_refused_before_any_work(options, fragment):
    with pytest.raises(DistillError, match=fragment):
        AdaptConfig(**{**TINY, **options}).validate()


def test_run_points_to_the_adapt_command():
    with pytest.raises(DistillError, match="distill adapt --source"):
        distill.distill(dataset="digits", method="adapt", progress=False)
