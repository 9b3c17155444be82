"""What several test modules share: a method and its initial synthetic set on the bundled 8x8 digits, built exactly
as `distill run` builds them (presets, validation, set-up)."""

from dataclasses import asdict

from distill.config import DistillConfig, resolve
from distill.start import initial_synset
from distill.methods import create, get_method


def method_and_set(task, method, ipc=1, **options):
    config = DistillConfig(**resolve(dataset="digits", method=method, ipc=ipc, **options))
    config.validate()
    synset = initial_synset(config, task)
    m = create(config)
    m.setup(task, synset)
    return m, synset


def full_options(method: str, options: dict) -> dict:
    """A method's options with its defaults written out: the settings of benchmarks/settings/sota.toml name every
    option, the presets and older results files only the ones they change."""
    return {**asdict(get_method(method).Options()), **options}
