"""Fast checks of data reading, the artifact format and the unrolled hypergradient."""

import gzip
import math

import pytest
import torch

from distill.data import get_spec, load_task
from distill.data.readers import read_idx_gz
from distill.errors import DistillError
from distill.methods.base import Method, Options
from distill.models import create_model, init_params
from distill.synset import SyntheticSet, load, save
from distill.train import unroll_schedule


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(DistillError, match="unknown dataset"):
        get_spec("imagenet-42")


def test_missing_files_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_OFFLINE", "1")
    with pytest.raises(DistillError, match="missing train-images-idx3-ubyte.gz"):
        load_task("mnist", root=tmp_path)


def test_truncated_gz(tmp_path):
    raw = b"\x00\x00\x08\x03" + (100).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 500
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(DistillError):
        read_idx_gz(path)


def test_digits_task_splits():
    task = load_task("digits")
    assert task.test_x.shape == (500, 1, 8, 8)
    assert len(task.val_x) == 200 and len(task.train_x) == 1097


def _synset():
    model = create_model("lenet", (1, 8, 8), 10)
    init = init_params(model, torch.Generator().manual_seed(0), "xavier")
    meta = {"dataset": "digits", "num_classes": 10, "image_shape": [1, 8, 8], "mean": [0.3], "std": [0.4],
            "method": "dd", "arch": "lenet", "ipc": 1, "steps": 1, "epochs": 2, "init": "fixed"}
    return SyntheticSet(torch.randn(10, 1, 8, 8), torch.arange(10), meta, torch.zeros(10, dtype=torch.long),
                        torch.full((2,), math.log(0.05)), init)


def test_save_load_roundtrip_and_no_overwrite(tmp_path):
    s = _synset()
    path = save(s, tmp_path / "a.safetensors")
    back = load(path)
    assert torch.equal(back.images, s.images) and torch.allclose(back.lrs, s.lrs)
    with pytest.raises(DistillError, match="exists"):
        save(s, path)


def test_pickle_and_wrong_shapes_rejected(tmp_path):
    torch.save({"images": torch.zeros(1)}, tmp_path / "p.safetensors")
    with pytest.raises(DistillError, match="pickle"):
        load(tmp_path / "p.safetensors")
    s = _synset()
    s.meta["image_shape"] = [1, 9, 9]  # refused when saved, so no file load would refuse is ever written
    with pytest.raises(DistillError, match="shape"):
        save(s, tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_hypergradient_matches_finite_differences():
    torch.manual_seed(0)
    model = create_model("mlp", (1, 4, 4), 3).double()
    params = {k: v.double() for k, v in init_params(model, torch.Generator().manual_seed(1)).items()}
    images = torch.randn(3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    labels, step = torch.arange(3), torch.zeros(3, dtype=torch.long)
    lrs = torch.tensor([0.3, 0.2], dtype=torch.float64, requires_grad=True)
    real_x, real_y = torch.randn(20, 1, 4, 4, dtype=torch.float64), torch.randint(3, (20,))

    def outer(imgs, rates):
        trained = unroll_schedule(model, params, imgs, labels, step, rates, 1, 2, create_graph=True)
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, trained, (real_x,)), real_y)

    g_img, g_lr = torch.autograd.grad(outer(images, lrs), [images, lrs])
    eps = 1e-6
    for i in [0, 7, 20]:
        d = torch.zeros_like(images).view(-1)
        d[i] = eps
        fd = (outer(images + d.view_as(images), lrs) - outer(images - d.view_as(images), lrs)) / (2 * eps)
        assert abs(fd.item() - g_img.view(-1)[i].item()) < 1e-6
    d = torch.tensor([eps, 0.0], dtype=torch.float64)
    fd = (outer(images, lrs + d) - outer(images, lrs - d)) / (2 * eps)
    assert abs(fd.item() - g_lr[0].item()) < 1e-6


def test_keep_best_restores_the_best_validated_set():
    from distill.loop import LoopConfig, run_loop

    class Drift(Method):
        """A 'method' whose loss pushes the image upwards; validation prefers it near 1.0."""

        name = "drift"

        def loss(self, synset, step, rng):
            return -synset.images.sum()

    images = torch.zeros(1, 1, 1, 1, requires_grad=True)
    synset = SyntheticSet(images, torch.zeros(1, dtype=torch.long), {"num_classes": 2})
    result = run_loop(Drift(None, Options()), synset, LoopConfig(iterations=40, lr_images=0.1, eval_every=1),
                      progress=False, validate=lambda s: -abs(float(s.images.detach().sum()) - 1.0))
    assert result.best_step == 10  # Adam moves 0.1 per step
    assert abs(float(synset.images.detach().sum()) - 1.0) < 1e-4


def test_lenet_has_the_original_layout_and_fits_small_images():
    assert create_model("lenet", (1, 28, 28), 10).fc1.in_features == 16 * 5 * 5  # padded 28x28, as in the paper's code
    assert create_model("lenet", (3, 32, 32), 10).fc1.in_features == 16 * 5 * 5
    for size in (8, 16):
        model = create_model("lenet", (1, size, size), 10)
        assert model(torch.zeros(2, 1, size, size)).shape == (2, 10)


def test_a_loss_blow_up_rolls_back_and_halves_the_step_size():
    from distill.loop import LoopConfig, run_loop

    class Cliff(Method):
        """Pushes the image up; past 6 the landscape only tolerates small steps: a step over 0.07 blows the loss up
        to 100, as unrolled training does when its synthetic tensors move too fast."""

        name = "cliff"

        def __init__(self):
            super().__init__(None, Options())
            self.previous = 0.0

        def loss(self, synset, step, rng):
            x = synset.images.sum()
            value = float(x.detach())
            jump, self.previous = abs(value - self.previous), value
            return x * 0 + 100.0 if value > 6 and jump > 0.07 else 1.0 - 0.01 * x

    def run(spike_factor):
        synset = SyntheticSet(torch.zeros(1, 1, 1, 1, requires_grad=True), torch.zeros(1, dtype=torch.long),
                              {"num_classes": 2})
        config = LoopConfig(iterations=100, lr_images=0.1, spike_factor=spike_factor)
        return synset, run_loop(Cliff(), synset, config, progress=False)

    guarded, result = run(10.0)
    assert 1 <= result.rollbacks <= 3
    assert [r["step"] for r in result.history] == list(range(1, 101))  # rolled-back steps are not kept twice
    assert max(r["loss"] for r in result.history) <= 1.0
    assert float(guarded.images.detach().sum()) > 6.5  # it went on, at the halved step size
    _, result = run(0.0)
    assert result.rollbacks == 0 and max(r["loss"] for r in result.history) == 100.0


def test_clamp_keeps_images_valid_pictures_and_leaves_valid_pixels_alone():
    images = torch.tensor([[-5.0, 0.0], [1.0, 9.0]]).view(1, 1, 2, 2)
    synset = SyntheticSet(images.clone(), torch.zeros(1, dtype=torch.long), {"mean": [0.5], "std": [0.25]})
    synset.clamp_to_pixel_range_()
    assert torch.equal(synset.images.view(-1), torch.tensor([-2.0, 0.0, 1.0, 2.0]))  # pixels 0 and 1 are -2 and 2
    assert torch.equal(synset.unnormalised_images().view(-1), torch.tensor([0.0, 0.5, 0.75, 1.0]))


def test_the_guard_falls_back_to_a_state_whose_loss_was_good():
    """A blow-up measured on the state a step lands on must not roll back to that very state (it would blow up
    again and again): here the state reached at step 70 is the bad one, and it is a snapshot step."""
    from distill.loop import LoopConfig, run_loop

    class BadState(Method):
        name = "bad-state"

        def loss(self, synset, step, rng):
            x = synset.images.sum()
            return x * 0 + 100.0 if step == 70 and 6.9 < float(x.detach()) < 7.1 else 1.0 - 0.01 * x

    synset = SyntheticSet(torch.zeros(1, 1, 1, 1, requires_grad=True), torch.zeros(1, dtype=torch.long),
                          {"num_classes": 2})
    result = run_loop(BadState(None, Options()), synset, LoopConfig(iterations=80, lr_images=0.1), progress=False)
    assert result.rollbacks == 1
    assert [r["step"] for r in result.history] == list(range(1, 81))


def test_per_layer_lrs_train_each_parameter_tensor_at_its_own_rate():
    model = create_model("mlp", (1, 4, 4), 3)
    params = init_params(model, torch.Generator().manual_seed(1))
    images, labels, step = torch.randn(3, 1, 4, 4), torch.arange(3), torch.zeros(3, dtype=torch.long)
    per_step = torch.tensor([0.3, 0.2])
    same = per_step[:, None].repeat(1, len(params))  # every column the step's rate: the one-rate schedule
    a = unroll_schedule(model, params, images, labels, step, per_step, 1, 2, create_graph=False)
    b = unroll_schedule(model, params, images, labels, step, same, 1, 2, create_graph=False)
    assert all(torch.allclose(a[k], b[k]) for k in params)
    frozen = same.clone()
    frozen[:, 0] = 0.0  # the first parameter tensor never moves, every other one does
    c = unroll_schedule(model, params, images, labels, step, frozen, 1, 2, create_graph=False)
    first, *rest = params
    assert torch.equal(c[first], params[first])
    assert all(not torch.equal(c[k], params[k]) for k in rest)
    shuffled = {k: params[k] for k in sorted(params)}  # how a set's stored network comes back from its file
    d = unroll_schedule(model, shuffled, images, labels, step, frozen, 1, 2, create_graph=False)
    assert all(torch.equal(c[k], d[k]) for k in params)


def test_per_layer_lrs_hypergradient_matches_finite_differences():
    model = create_model("mlp", (1, 4, 4), 3).double()
    params = {k: v.double() for k, v in init_params(model, torch.Generator().manual_seed(1)).items()}
    images = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    labels, step = torch.arange(3), torch.zeros(3, dtype=torch.long)
    lrs = torch.full((2, len(params)), 0.2, dtype=torch.float64, requires_grad=True)
    real_x = torch.randn(20, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    real_y = torch.randint(3, (20,), generator=torch.Generator().manual_seed(4))

    def outer(rates):
        trained = unroll_schedule(model, params, images, labels, step, rates, 1, 2, create_graph=True)
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, trained, (real_x,)), real_y)

    (g,) = torch.autograd.grad(outer(lrs), [lrs])
    eps = 1e-6
    for t, j in [(0, 0), (1, len(params) - 1)]:
        d = torch.zeros_like(lrs)
        d[t, j] = eps
        fd = (outer(lrs.detach() + d) - outer(lrs.detach() - d)) / (2 * eps)
        assert abs(fd.item() - g[t, j].item()) < 1e-6


def test_per_layer_lrs_round_trip_and_wrong_columns_rejected(tmp_path):
    s = _synset()
    s.log_lrs = torch.randn(2, len(s.init_params)) * 0.1 + math.log(0.05)
    back = load(save(s, tmp_path / "layers.safetensors"))
    assert back.lrs.shape == (2, len(s.init_params)) and torch.allclose(back.lrs, s.lrs)
    s.log_lrs = torch.zeros(2, len(s.init_params) + 1)
    with pytest.raises(DistillError, match="one column per parameter tensor"):
        save(s, tmp_path / "wrong.safetensors")
    assert not (tmp_path / "wrong.safetensors").exists()


def test_per_layer_lrs_need_a_method_that_learns_a_schedule():
    from distill.config import DistillConfig

    DistillConfig(dataset="digits", method="dd", layer_lrs=True).validate()
    with pytest.raises(DistillError, match="--layer-lrs needs a method that learns a training schedule"):
        DistillConfig(dataset="digits", method="dm", arch="convnet", init="random", layer_lrs=True).validate()


class _Zigzag(Method):
    """A 'method' whose loss gradient alternates in sign, so the set jumps up and down by the step size while its
    average stays put: what a moving average of the set (`--ema`) is for."""

    name = "zigzag"

    def loss(self, synset, step, rng):
        return (1 if step % 2 else -1) * synset.images.sum()


def _zigzag_run(ema: float, iterations: int, tmp_path=None, resume: bool = False, validate=None):
    from distill.loop import LoopConfig, run_loop

    synset = SyntheticSet(torch.zeros(1, 1, 1, 1, requires_grad=True), torch.zeros(1, dtype=torch.long),
                          {"num_classes": 2})
    config = LoopConfig(iterations=iterations, optimizer="sgd", momentum=0.0, lr_images=1.0, ema=ema,
                        checkpoint_every=3, eval_every=1)
    result = run_loop(_Zigzag(None, Options()), synset, config, validate=validate, checkpoint_dir=tmp_path,
                      resume=resume, progress=False)
    return synset, result


def test_ema_keeps_the_moving_average_of_the_set_not_its_last_state():
    # plain SGD with step 1 on the loss above: the image goes 1, 0, 1, 0, ... (step 0's gradient is -1)
    plain, _ = _zigzag_run(ema=0.0, iterations=5)
    assert float(plain.images.detach().sum()) == 1.0
    averaged, _ = _zigzag_run(ema=0.5, iterations=5)
    expected = 0.0
    for value in (1, 0, 1, 0, 1):  # the average starts at the initial set and takes half of every new state
        expected = 0.5 * expected + 0.5 * value
    assert math.isclose(float(averaged.images.detach().sum()), expected, rel_tol=1e-6)


def test_ema_validation_sees_the_average_and_keep_best_keeps_it():
    seen = []
    synset, result = _zigzag_run(ema=0.5, iterations=4, validate=lambda s: seen.append(float(s.images.detach().sum()))
                                 or -len(seen))  # the first validation scores best
    assert seen == [0.5, 0.25, 0.625, 0.3125]  # the averages after steps 1 to 4, not the states 1, 0, 1, 0
    assert result.best_step == 1 and math.isclose(float(synset.images.detach().sum()), 0.5)


def test_ema_resumes_exactly(tmp_path):
    whole, _ = _zigzag_run(ema=0.7, iterations=7)
    _zigzag_run(ema=0.7, iterations=3, tmp_path=tmp_path)
    resumed, _ = _zigzag_run(ema=0.7, iterations=7, tmp_path=tmp_path, resume=True)
    assert math.isclose(float(resumed.images.detach().sum()), float(whole.images.detach().sum()), rel_tol=1e-6)
    assert not math.isclose(float(whole.images.detach().sum()), 1.0)  # the average, not the last state, was resumed


def test_an_optimiser_state_entry_of_none_is_not_saved():
    """torch 2.2 and 2.3's SGD without momentum stores `momentum_buffer: None` for every tensor; snapshots (the
    divergence guard's, every 10 steps) and checkpoints crashed on it ("Could not infer dtype of NoneType")."""
    from distill.loop import LoopConfig, _State

    synset = SyntheticSet(torch.zeros(1, 1, 1, 1, requires_grad=True), torch.zeros(1, dtype=torch.long),
                          {"num_classes": 2})
    state = _State(synset, LoopConfig(optimizer="sgd", momentum=0.0))
    image = synset.images
    state.optimiser.state[image] = {"momentum_buffer": None}
    saved = state.snapshot()
    assert sorted(saved) == ["synset.images"]
    state.restore(saved)
    assert state.optimiser.state_dict()["state"] == {}


def test_validation_curve_draws_a_results_files_history_that_has_no_losses(tmp_path):
    """A results file keeps only (step, validation) pairs; its curve is redrawn from them (a GPU session brings back
    no pictures), so the plot must not need the outer loss that a live run's history has."""
    from distill.report import validation_curve  # noqa: PLC0415

    validation_only = [{"step": s, "val_acc": a} for s, a in ((500, 0.70), (1000, 0.75), (1500, 0.77))]
    live = [{"step": s, "loss": 1.0 / s, **({"val_acc": 0.7} if s == 2 else {})} for s in (1, 2, 3)]
    for name, history in (("only-validation.png", validation_only), ("live.png", live)):
        path = validation_curve(history, tmp_path / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class RecordingBar:
    """Stands in for tqdm: records each bar's name and every update, so a test can see what a user would."""

    made: list["RecordingBar"] = []

    def __init__(self, total=None, desc=None, disable=False, **_):
        self.total, self.desc, self.disable, self.updates = total, desc, disable, []
        RecordingBar.made.append(self)

    def update(self, n=1):
        self.updates.append(n)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def test_training_bars_advance_every_batch_and_name_each_network(monkeypatch):
    """A full-data epoch or one network of 1,000 augmented epochs takes minutes on a CPU: the bar must move within
    an epoch, and evaluation (the distilled set's networks and the random-real baseline's) must show one per network."""
    import distill.train
    from distill.evaluate import evaluate_set, random_real_baseline
    from distill.train import SGDConfig, train_sgd

    monkeypatch.setattr(distill.train, "tqdm", RecordingBar)
    RecordingBar.made = []
    model = create_model("mlp", (1, 8, 8), 10)
    params = init_params(model, torch.Generator().manual_seed(0))
    x, y = torch.randn(10, 1, 8, 8), torch.arange(10)
    train_sgd(model, params, x, y, SGDConfig(epochs=2, batch_size=4), torch.Generator().manual_seed(0), progress="t")
    (bar,) = RecordingBar.made
    assert bar.total == 6 and bar.updates == [1] * 6  # three batches an epoch, two epochs, one update per batch

    RecordingBar.made = []
    task = load_task("digits")
    meta = {"dataset": "digits", "num_classes": 10, "image_shape": [1, 8, 8], "mean": list(task.spec.mean),
            "std": list(task.spec.std), "method": "dm", "arch": "mlp", "ipc": 1, "steps": 1, "epochs": 1,
            "init": "random"}
    synset = SyntheticSet(task.train_x[:10].clone(), task.train_y[:10].clone(), meta)
    sgd = SGDConfig(epochs=2)
    evaluate_set(synset, task, "standard", "mlp", n_nets=2, sgd=sgd)
    random_real_baseline(task, synset, "mlp", n_nets=2, sgd=sgd)
    names = [b.desc for b in RecordingBar.made if not b.disable]
    assert names == ["evaluate (standard, mlp), network 1/2", "evaluate (standard, mlp), network 2/2",
                     "baseline: random real images (mlp), network 1/2",
                     "baseline: random real images (mlp), network 2/2"]
    RecordingBar.made = []
    evaluate_set(synset, task, "standard", "mlp", n_nets=2, sgd=sgd, progress=False)
    assert all(b.disable for b in RecordingBar.made)


def test_real_starting_images_are_distinct_and_keep_the_draws_of_seeds_that_never_repeated():
    """Places were filled by independent draws, so a set could start with one image twice (the committed MNIST DM set
    at 50 per class held such a pair, still identical after distillation). Now a repeat is drawn again; a seed whose
    draws never repeated gives the very set it gave before."""
    from distill.start import real_picks

    task = load_task("digits")
    train_y = task.train_y.cpu()

    def old_draws(labels, generator):
        return [int((train_y == c).nonzero().flatten()[torch.randint(int((train_y == c).sum()), (1,),
                                                                     generator=generator)]) for c in labels]

    many = torch.arange(10).repeat(105)  # nearly every image of the smallest class (105 of them)
    picks = real_picks(task, many, torch.Generator().manual_seed(0))
    assert len(set(picks)) == len(picks)
    assert train_y[picks].tolist() == many.tolist()
    assert len(set(old_draws(many, torch.Generator().manual_seed(0)))) < len(many)  # the old draws did repeat

    few = torch.arange(10).repeat(2)
    seed = next(s for s in range(100)
                if len(set(old_draws(few, torch.Generator().manual_seed(s)))) == len(few))
    same_seed = torch.Generator().manual_seed(seed)
    assert real_picks(task, few, same_seed) == old_draws(few, torch.Generator().manual_seed(seed))


def test_a_set_larger_than_a_class_is_refused_before_any_work():
    """The random-real baseline, measured after the whole distillation, needs as many distinct real images of each
    class as the set holds; asking for more must fail at once, whatever the set starts from."""
    from distill.config import DistillConfig
    from distill.start import initial_synset

    task = load_task("digits")
    for image_init in ("real", "noise"):
        with pytest.raises(DistillError, match="only 105 training images of class '7', fewer than the 110"):
            initial_synset(DistillConfig(dataset="digits", method="dm", ipc=110, image_init=image_init), task)
    assert len(initial_synset(DistillConfig(dataset="digits", method="dm", ipc=105), task).images) == 1050


def test_a_device_that_is_not_there_is_one_clear_error():
    """`--device cuda` on a machine without a GPU used to end in PyTorch's AssertionError traceback."""
    from distill.device import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(DistillError, match="not a device name"):
        pick_device("tpu")
    with pytest.raises(DistillError, match="cuda:99"):  # no GPU at all, or fewer than a hundred
        pick_device("cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(DistillError, match="sees no CUDA GPU"):
            pick_device("cuda")


def test_python_callers_get_one_line_for_a_wrong_type_or_a_folder(tmp_path):
    """From Python, `ipc="2"` ended in a TypeError deep inside validation, and a run's folder given as its set file
    was called missing."""
    from distill.config import DistillConfig

    with pytest.raises(DistillError, match="ipc must be of type int, got '2'"):
        DistillConfig(ipc="2").validate()
    with pytest.raises(DistillError, match="keep_best must be of type bool, got 1"):
        DistillConfig(keep_best=1).validate()
    with pytest.raises(DistillError, match="ema must be of type float, got True"):
        DistillConfig(ema=True).validate()
    DistillConfig(ema=0, max_minutes=2).validate()  # an int where a float is expected is a number all the same
    from distill.config import AttackConfig

    AttackConfig(target=None).validate()  # forget: the one field that may be None
    with pytest.raises(DistillError, match="attacked must be of type int, got None"):
        AttackConfig(attacked=None).validate()
    with pytest.raises(DistillError, match="is a folder"):
        load(tmp_path)


def test_a_rollback_restores_the_methods_own_state_as_it_was_before_the_step():
    """The divergence guard rolls back the set, its optimiser and the method's own state (dc's network, frepo's
    pool) together: here the state counts the loss calls; a blow-up at step 12 rolls back to step 10, so after 15
    steps the count is 15 (with the state left where it was, it would be 18: 13 calls before the rollback, 5 after)."""
    from distill.loop import LoopConfig, run_loop

    class Counting(Method):
        name = "counting"

        def __init__(self):
            super().__init__(None, Options())
            self.calls, self.blown = torch.tensor(0), False

        def loss(self, synset, step, rng):
            self.calls = self.calls + 1
            if step == 12 and not self.blown:
                self.blown = True
                return synset.images.sum() * float("nan")
            return 1.0 - 0.01 * synset.images.sum()

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, state):
            self.calls = state["calls"].clone()

    synset = SyntheticSet(torch.zeros(1, 1, 1, 1, requires_grad=True), torch.zeros(1, dtype=torch.long),
                          {"num_classes": 2})
    method = Counting()
    result = run_loop(method, synset, LoopConfig(iterations=15, lr_images=0.1), progress=False)
    assert result.rollbacks == 1
    assert int(method.calls) == 15
