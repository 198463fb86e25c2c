"""Config nodes that say which file and which key were wrong."""
from typing import List

import yaml
from fvcore.common.config import CfgNode as _FvcoreCfgNode

from ..utils.errors import UserError

__all__ = ["CfgNode", "ConfigError", "get_cfg"]


class ConfigError(UserError):
    """A config file or override that does not fit the known keys or their types."""


class CfgNode(_FvcoreCfgNode):
    """fvcore's CfgNode (``_BASE_`` inheritance, safe YAML) with errors that name the file."""

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        try:
            loaded = self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe)
        except FileNotFoundError as e:
            raise ConfigError(f"{cfg_filename}: no such config file ({e.filename})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{cfg_filename}: cannot be parsed as YAML: {e}") from e
        try:
            self.merge_from_other_cfg(type(self)(loaded))
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"{cfg_filename}: {_describe(e)}") from None

    def merge_from_list(self, cfg_list: List[str]) -> None:
        if len(cfg_list) % 2:
            raise ConfigError(f"overrides come as KEY VALUE pairs; got an odd list: {cfg_list}")
        try:
            super().merge_from_list(cfg_list)
        except (KeyError, ValueError, TypeError, AssertionError) as e:
            raise ConfigError(f"command-line override: {_describe(e)}") from None


_UNKNOWN_KEY_MESSAGES = ("Non-existent config key: ", "Non-existent key: ")  # yacs' two wordings


def _describe(error: Exception) -> str:
    message = str(error.args[0]) if error.args else str(error)
    for prefix in _UNKNOWN_KEY_MESSAGES:
        if message.startswith(prefix):
            key = message[len(prefix):]
            return f"unknown config key {key}; the known keys are in gn_detection/config/defaults.py"
    return message


def get_cfg() -> CfgNode:
    """A fresh copy of the defaults, to merge config files and overrides into."""
    from .defaults import _C

    return _C.clone()
