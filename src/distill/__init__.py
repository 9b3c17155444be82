"""distill: dataset distillation (and distilled-image poisoning) behind one API and one command.

    import distill
    run = distill.distill(dataset="mnist", iterations=4000, out="runs/mnist")
    print(distill.evaluate("runs/mnist/synset.safetensors"))
    distill.relabel("runs/mnist/synset.safetensors", "runs/mnist/teacher.safetensors", weight=0.5)
"""

from distill.api import DistillConfig, RunResult, distill, evaluate, relabel
from distill.errors import DistillError
from distill.poison import AttackConfig, attack
from distill.synset import SyntheticSet, load, save

__all__ = ["AttackConfig", "attack", "DistillConfig", "DistillError", "RunResult", "SyntheticSet", "distill", "evaluate", "load",
           "relabel", "save"]
__version__ = "0.1.0"
