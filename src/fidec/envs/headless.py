"""Quiet, headless MuJoCo set-up, applied before any simulator is imported.

On a machine without a display (``DISPLAY`` unset) MuJoCo's default GLFW backend prints an X11 error on
import and cannot render; EGL renders off-screen instead, so ``MUJOCO_GL`` defaults to ``egl`` there.
A value the user set is never changed.  Gymnasium's warning that float64 bounds of OGBench's Box spaces
are cast to float32 says nothing actionable and is silenced.
"""

from __future__ import annotations

import os
import warnings


def configure_headless() -> None:
    """Set ``MUJOCO_GL=egl`` when there is no display and none was chosen; silence the Box-precision warning."""
    if not os.environ.get("DISPLAY") and "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = "egl"
    if "PYOPENGL_PLATFORM" not in os.environ and os.environ.get("MUJOCO_GL") == "egl":
        os.environ["PYOPENGL_PLATFORM"] = "egl"
    warnings.filterwarnings("ignore", message=r".*Box (low|high)'s precision lowered.*")
