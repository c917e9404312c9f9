"""Pipeline configs: op configs to ops (``build_op``) and YAML/JSON files to configs.

The format is ``{"version": 1, "seed": int, "ops": [{"op": name, **args}, ...]}``; containers
hold their children under ``ops``. Unknown names, keys and arguments are refused with the path
to them (``ops[1].ops[0]``) and a did-you-mean; YAML is read with ``safe_load`` (no tags).
"""

from __future__ import annotations

import difflib
import inspect
import json
from pathlib import Path
from typing import Any

import augmentor.ops  # noqa: F401  (registers the ops)
from augmentor.ops.base import Node
from augmentor.registry import OPS

__all__ = ["FORMAT_VERSION", "build_op", "check_config", "dump_config", "read_config"]

FORMAT_VERSION = 1


def check_config(cfg: Any) -> tuple[int, list[Node]]:
    """``(seed, ops)`` of a pipeline config, or a ValueError naming what is wrong."""
    if not isinstance(cfg, dict):
        raise ValueError(f"pipeline config must be a mapping, got {type(cfg).__name__}")
    unknown = set(cfg) - {"version", "seed", "ops"}
    if unknown:
        raise ValueError(
            f"pipeline config: unknown key(s) {sorted(unknown)} (expected version, seed, ops)"
        )
    version = cfg.get("version")
    if version != FORMAT_VERSION:
        raise ValueError(f"pipeline config: version must be {FORMAT_VERSION}, got {version!r}")
    ops = cfg.get("ops")
    if not isinstance(ops, list):
        raise ValueError(f"pipeline config: ops must be a list, got {ops!r}")
    return cfg.get("seed", 0), [build_op(c, f"ops[{i}]") for i, c in enumerate(ops)]


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def dump_config(cfg: dict[str, Any], path: Path) -> str:
    """The text of ``cfg`` as YAML (``.yaml``/``.yml``) or JSON (any other suffix)."""
    if _is_yaml(path):
        import yaml

        return str(yaml.safe_dump(cfg, sort_keys=False))
    return json.dumps(cfg, indent=2) + "\n"


def read_config(path: str | Path) -> Any:
    """The parsed content of a pipeline file, or a ValueError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read pipeline file {str(path)!r}: {e.strerror}") from None
    try:
        if _is_yaml(path):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as e:  # yaml and json raise different types
        raise ValueError(
            f"pipeline file {str(path)!r} is not valid {'YAML' if _is_yaml(path) else 'JSON'}: {e}"
        ) from None


def build_op(cfg: Any, where: str = "op") -> Node:
    """Create an op from its config ``{"op": name, **args}`` (children under ``ops``)."""
    if not isinstance(cfg, dict) or "op" not in cfg:
        raise ValueError(f"{where}: an op config must be a mapping with an 'op' key, got {cfg!r}")
    name = cfg["op"]
    if not isinstance(name, str):
        raise ValueError(f"{where}: 'op' must be an op name, got {name!r}")
    if name not in OPS:
        raise ValueError(f"{where}: {OPS.unknown_message(name)}")
    cls = OPS.get(name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    args = {k: v for k, v in cfg.items() if k != "op"}
    unknown = [k for k in args if k not in allowed]
    if unknown:
        hints = [difflib.get_close_matches(k, allowed, n=1) for k in unknown]
        hint = "".join(f"; did you mean {h[0]!r} for {k!r}?" for k, h in zip(unknown, hints) if h)
        raise ValueError(
            f"{where} ({name}): unknown argument(s) {unknown}{hint} (allowed: {allowed})"
        )
    if "ops" in args:
        if not isinstance(args["ops"], list):
            raise ValueError(f"{where} ({name}): ops must be a list, got {args['ops']!r}")
        args["ops"] = [build_op(c, f"{where}.ops[{i}]") for i, c in enumerate(args["ops"])]
    try:
        return cls(**args)
    except TypeError as e:
        raise ValueError(f"{where} ({name}): {e}") from None
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
