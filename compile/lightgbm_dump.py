"""What the compilers read from a LightGBM model's JSON dump (``Booster.dump_model()``), in one place.

Examples
--------
>>> objective({"objective": "binary sigmoid:1"})
('binary', 1.0)
>>> objective({"objective": "multiclass num_class:5"})
('multiclass', 1.0)
"""

from __future__ import annotations

from compile.errors import CompileError

__all__ = ["missing_goes_left", "objective"]

_REGRESSION = ("regression", "regression_l2", "l2", "mean_squared_error", "mse", "huber", "fair", "quantile")


def objective(dump: dict) -> tuple[str, float]:
    """("binary", sigmoid scale), ("multiclass", 1.0) or ("regression", 1.0): how raw sums become predictions."""
    name, *params = dump["objective"].split()
    options = dict(p.split(":", 1) for p in params if ":" in p)
    if name == "binary":
        return "binary", float(options.get("sigmoid", 1.0))
    if name in ("multiclass", "softmax"):
        return "multiclass", 1.0
    if name in _REGRESSION:
        return "regression", 1.0
    raise CompileError(f"LightGBM objective {dump['objective']!r} is not compiled here (binary, multiclass, L2)")


def missing_goes_left(node: dict) -> bool:
    """Where a NaN goes at a numeric split: the node's default for ``missing_type`` NaN; for ``None`` LightGBM
    reads NaN as 0.0 and compares it. ``Zero`` (``zero_as_missing``) is refused."""
    if node["missing_type"] == "NaN":
        return bool(node["default_left"])
    if node["missing_type"] == "None":
        return 0.0 <= float(node["threshold"])
    raise CompileError("tree split with missing_type 'Zero' (zero_as_missing) is not supported")
