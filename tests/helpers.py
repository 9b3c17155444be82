"""What several test modules share: a method and its initial synthetic set on the bundled 8x8 digits, built exactly
as `distill run` builds them (presets, validation, set-up)."""

from distill import presets
from distill.api import DistillConfig, build_method, initial_synset


def method_and_set(task, method, ipc=1, **options):
    config = DistillConfig(**presets.resolve(dataset="digits", method=method, ipc=ipc, **options))
    config.validate()
    synset = initial_synset(config, task)
    m = build_method(config)
    m.setup(task, synset)
    return m, synset
