"""The public API: everything a program using distill calls, the `distill` command included (the import contracts
in pyproject.toml let the command import nothing else). The package's top level re-exports the everyday part of
it (`distill.distill`, `distill.evaluate`, `distill.attack` ...).

- runs: `distill`, `attack`, `adapt` (with `AdaptConfig`), `evaluate` (and `evaluate_recipes`: under every standard recipe), `relabel`, with their configurations `DistillConfig` and `AttackConfig`,
  and `audit` (is a set a poison? `audit_report` prints its evidence); configurations are completed by the shipped
  presets (`resolve`) or taken as recorded (`load_config`, `read_record`, `config_from_record`, `replace_fields`, `recorded_cpu_threads`), either as a command line gives it (`configure`,
  `replay`: a recorded one with options replacing its fields);
- sets: `load`, `save`, `describe`, `SyntheticSet`; a run's checkpoint (`CHECKPOINT_NAME`, `checkpoint_step`); how
  to repeat what made a set (`rerun_command`) and its recorded accuracies (`recorded_results`, `remeasure_command`,
  `accuracy_text`);
- what the command line shows and checks: the methods (`METHODS`, `selects`, `options_from_pairs`), the presets'
  tables (`BEST_METHOD`), option names (`flag`, `canonical_names`, `augment_option`), the datasets
  (`dataset_status`, `describe_dataset`, `short_name`), devices (`pick_device`, `environment`), and
  whether this process is one of several ranks of a torchrun (`launched`) and the one that prints (`is_main`).
"""

from distill.adapt import AdaptResult, adapt
from distill.audit import AuditResult, audit, audit_report
from distill.augment import augment_option
from distill.config import AdaptConfig, AttackConfig, DistillConfig, flag, resolve
from distill.data import dataset_status, describe_dataset, short_name
from distill.device import environment, pick_device
from distill.errors import DistillError
from distill.loop import CHECKPOINT_NAME, checkpoint_step
from distill.methods import METHODS, selects
from distill.parallel import is_main, launched
from distill.methods.base import options_from_pairs
from distill.poison import AttackResult, attack
from distill.presets import BEST_METHOD, canonical_names
from distill.records import config_from_record, load_config, read_record, recorded_cpu_threads, replace_fields
from distill.rerun import accuracy_text, configure, recorded_results, remeasure_command, replay, rerun_command
from distill.run import RunResult, distill, evaluate, evaluate_recipes, relabel
from distill.synset import SyntheticSet, describe, load, save

__all__ = ["AdaptConfig", "AdaptResult", "adapt", "AttackConfig", "AttackResult", "AuditResult", "audit", "audit_report", "BEST_METHOD", "CHECKPOINT_NAME",
           "DistillConfig", "DistillError", "METHODS",
           "RunResult", "SyntheticSet", "accuracy_text", "attack", "augment_option", "canonical_names",
           "checkpoint_step", "config_from_record", "configure", "dataset_status", "describe", "describe_dataset",
           "distill",
           "environment", "evaluate", "evaluate_recipes", "flag", "is_main", "launched", "load", "load_config", "options_from_pairs",
           "pick_device",
           "read_record", "recorded_cpu_threads", "recorded_results", "relabel", "remeasure_command",
           "replace_fields", "replay", "rerun_command", "resolve", "save", "selects", "short_name"]
