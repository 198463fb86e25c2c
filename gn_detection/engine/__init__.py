from .solver import build_lr_scheduler, build_optimizer, get_param_groups

__all__ = ["build_lr_scheduler", "build_optimizer", "get_param_groups"]
