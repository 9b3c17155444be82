"""The methods, each in a file of its own (GUIDE §3); `distill.methods.base` says what a method is. Importing this
package registers every one of them: code that needs a particular method, or the list of all of them, imports it;
the loop, evaluation, the set file, data, models and reports never do (the import contracts in pyproject.toml)."""

from distill.methods import adapt, attack, coreset, dc, dd, dm, dsa, frepo, mtt, unroll  # noqa: F401  (registers them)
from distill.methods.base import METHODS, Method, Selector, create, get_method, learns, selects

__all__ = ["METHODS", "Method", "Selector", "create", "get_method", "learns", "selects"]
