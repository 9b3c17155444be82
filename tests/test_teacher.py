"""Teacher labels (`--teacher-labels`): the full-data network's softened predictions blended into the set's labels,
saved as probabilities, with bad blends refused before any work."""

import pytest
import torch

import distill
from distill.config import DistillConfig
from distill.start import initial_synset
from distill.data import load_task
from distill.errors import DistillError
from distill.models import create_model
from distill.teacher import teacher_probabilities, with_teacher_labels
from distill.synset import load
from distill.train import full_data_config, trained_network


@pytest.fixture(scope="module")
def digits():
    return load_task("digits")


@pytest.fixture(scope="module")
def real_set(digits):
    """Ten real digits, one per class, as `distill run` starts them (LeNet, hard labels)."""
    return initial_synset(DistillConfig(), digits, progress=False)


def test_teacher_probabilities_are_the_full_data_network_softened(digits, real_set):
    params = trained_network(digits, "lenet", seed=0, config=full_data_config("lenet"), progress=False)
    logits = torch.func.functional_call(create_model("lenet", digits.image_shape, 10), params, (real_set.images,))
    sharp, soft = (teacher_probabilities(real_set, digits, t, progress=False) for t in (1.0, 4.0))
    assert torch.allclose(sharp, logits.softmax(1), atol=1e-6)
    assert torch.allclose(soft, (logits / 4).softmax(1), atol=1e-6)
    assert (soft.max(1).values < sharp.max(1).values).all()  # a higher temperature spreads the probability
    assert (sharp.argmax(1) == real_set.labels).float().mean() >= 0.9  # a real teacher: it knows real digits


def test_the_blend_mixes_own_labels_and_teacher(digits, real_set):
    teacher = teacher_probabilities(real_set, digits, 2.0, progress=False)
    own = torch.nn.functional.one_hot(real_set.labels, 10).float()
    for weight in (0.0, 0.3, 1.0):
        blended = with_teacher_labels(real_set, digits, weight, 2.0, progress=False)
        assert torch.allclose(blended.labels, (1 - weight) * own + weight * teacher, atol=1e-6)
        assert torch.allclose(blended.labels.sum(1), torch.ones(10), atol=1e-5)
        assert blended.meta["teacher_labels"] == {"weight": weight, "temperature": 2.0}
        assert torch.equal(blended.images, real_set.images.detach())
    assert real_set.labels.ndim == 1 and "teacher_labels" not in real_set.meta  # the input set is left alone


@pytest.mark.parametrize("weight, temperature, message",
                         [(1.5, 2.0, "--teacher-labels"), (-0.1, 2.0, "--teacher-labels"),
                          (0.5, 0.0, "--teacher-temperature")])
def test_bad_blends_are_refused(weight, temperature, message):
    with pytest.raises(DistillError, match=message):
        DistillConfig(teacher_labels=weight, teacher_temperature=temperature).validate()


def test_run_saves_the_blended_labels(tmp_path):
    out = tmp_path / "run"
    distill.distill(dataset="digits", method="dd", iterations=2, teacher_labels=0.5, out=out, evaluate=False,
                    progress=False)
    saved = load(out / "synset.safetensors")
    assert saved.labels.shape == (10, 10) and saved.labels.dtype == torch.float32
    assert torch.equal(saved.labels.argmax(1), torch.arange(10))
    assert (saved.labels.max(1).values < 1).all() and (saved.labels.max(1).values >= 0.5).all()
    assert saved.meta["config"]["teacher_labels"] == 0.5
    own = load(out / "synset-as-distilled.safetensors")  # beside it, the set as distilled, for another blend later
    assert torch.equal(own.images, saved.images) and "teacher_labels" not in own.meta
    assert torch.allclose(saved.labels, 0.5 * own.target_probabilities() + 0.5 * teacher_probabilities(
        own, load_task("digits"), 2.0, progress=False), atol=1e-6)
    distill.distill(dataset="digits", iterations=2, out=out, force=True, evaluate=False, progress=False)
    assert not (out / "synset-as-distilled.safetensors").exists()  # no blend this time, so no stale set beside it



def test_relabel_command_writes_a_new_file_and_keeps_the_old(tmp_path):
    from test_cli import assert_user_error, cli  # noqa: PLC0415 - the subprocess helpers of the CLI tests

    source = tmp_path / "set.safetensors"
    distill.distill(dataset="digits", method="dd", iterations=1, out=tmp_path / "run", evaluate=False, progress=False)
    (tmp_path / "run" / "synset.safetensors").rename(source)
    before = source.read_bytes()
    result = cli("relabel", source, "--teacher-labels", "0.25")
    assert result.returncode == 0, result.stderr
    relabelled = load(tmp_path / "set-teacher.safetensors")
    assert source.read_bytes() == before
    assert relabelled.meta["teacher_labels"] == {"weight": 0.25, "temperature": 2.0}
    assert "results" not in relabelled.meta
    assert relabelled.labels.shape == (10, 10) and (relabelled.labels.max(1).values >= 0.75).all()
    assert_user_error(cli("relabel", source, "--teacher-labels", "0.25"), "--force")  # never over a result unasked
    assert_user_error(cli("relabel", tmp_path / "set-teacher.safetensors"), "already hold teacher")  # not twice
    assert_user_error(cli("relabel", source, "--teacher-temperature", "0", "--out", tmp_path / "o.safetensors"),
                      "--teacher-temperature")
    assert not (tmp_path / "o.safetensors").exists()


def test_evaluation_can_also_score_the_validation_split_without_changing_the_test_numbers(digits, real_set):
    from distill.evaluate import SGDConfig, evaluate_set  # noqa: PLC0415

    sgd = SGDConfig(epochs=200)
    plain = evaluate_set(real_set.detached(), digits, "standard", n_nets=2, sgd=sgd, progress=False)
    both = evaluate_set(real_set.detached(), digits, "standard", n_nets=2, sgd=sgd, progress=False,
                        validation=True)
    assert both.accuracies == plain.accuracies and "val_accuracies" not in plain.detail
    assert len(both.detail["val_accuracies"]) == 2 and all(0.4 < a <= 1 for a in both.detail["val_accuracies"])


def test_resume_of_a_finished_run_can_blend_teacher_labels_without_distilling_again(tmp_path):
    tiny = dict(dataset="digits", method="dm", iterations=3, eval_every=3, options={"real_batch": 16}, progress=False)
    first = distill.distill(out=tmp_path, evaluate=False, **tiny)
    again = distill.distill(out=tmp_path, resume=True, evaluate=False, teacher_labels=0.5, **tiny)
    assert torch.equal(first.synset.images, again.synset.images)  # nothing was distilled again
    assert first.synset.labels.ndim == 1 and again.synset.labels.shape == (10, 10)
    assert torch.equal(again.synset.labels.argmax(1), first.synset.labels)
    assert load(tmp_path / "synset.safetensors").meta["teacher_labels"]["weight"] == 0.5


def test_standard_validation_trains_as_the_final_evaluation_does(digits):
    """`validation="standard"` validates with the evaluation's augmentation and epochs; with none and the quick
    validator's 100 epochs it is the quick validator exactly, and each of those settings changes what it measures."""
    from distill.run import VALIDATION_EPOCHS, validation_accuracy

    base = DistillConfig(method="dm", arch="convnet", init="random")
    synset = initial_synset(base, digits, progress=False)
    quick = validation_accuracy(base, digits)(synset)
    standard = lambda **o: validation_accuracy(DistillConfig(**{**base.__dict__, "validation": "standard", **o}),  # noqa: E731
                                               digits)(synset)
    assert standard(eval_augment="none", eval_epochs=VALIDATION_EPOCHS) == quick
    assert standard(eval_augment="none", eval_epochs=3) != quick
    assert standard(eval_augment="dsa", eval_epochs=VALIDATION_EPOCHS) != quick


def test_an_unknown_validation_is_refused():
    with pytest.raises(DistillError, match="--validation"):
        DistillConfig(validation="thorough").validate()
