from .config import CfgNode, ConfigError, get_cfg
from .validate import check_config

__all__ = ["CfgNode", "ConfigError", "check_config", "get_cfg"]
