"""Start an official codebase's ``main.py`` with wandb offline and OGBench reading ``$OGBENCH_DATA_DIR``.

    python launch_official.py CHECKOUT [their flags ...]

Both adjustments are made from outside their files: ``wandb.Settings`` drops the ``start_method`` key that
current wandb releases reject, ``wandb.init`` takes its mode from ``$WANDB_MODE`` (default offline), and
``ogbench.make_env_and_datasets`` defaults its ``dataset_dir`` to ``$OGBENCH_DATA_DIR``.
"""

from __future__ import annotations

import functools
import os
import runpy
import sys


def _patch_wandb() -> None:
    import wandb

    settings_cls = wandb.Settings
    init = wandb.init

    def settings(*args, **kwargs):
        kwargs.pop("start_method", None)
        return settings_cls(*args, **kwargs)

    @functools.wraps(init)
    def offline_init(*args, **kwargs):
        kwargs["mode"] = os.environ.get("WANDB_MODE", "offline")
        return init(*args, **kwargs)

    wandb.Settings = settings
    wandb.init = offline_init


def _patch_ogbench() -> None:
    data_dir = os.environ.get("OGBENCH_DATA_DIR")
    if not data_dir:
        return
    import ogbench

    make = ogbench.make_env_and_datasets

    @functools.wraps(make)
    def make_with_dir(*args, **kwargs):
        kwargs.setdefault("dataset_dir", data_dir)
        return make(*args, **kwargs)

    ogbench.make_env_and_datasets = make_with_dir


def main() -> None:
    checkout = os.path.abspath(sys.argv[1])
    _patch_wandb()
    _patch_ogbench()
    os.chdir(checkout)
    sys.path.insert(0, checkout)
    sys.argv = [os.path.join(checkout, "main.py"), *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
