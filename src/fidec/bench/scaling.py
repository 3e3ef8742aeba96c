"""How FD's update cost grows with batch size, network width and action dimension.

Around a base preset, one quantity is varied at a time (the others stay at the preset's values);
each point reports ms per update, matmul GFLOP per update and the roofline fraction, so growth in
time can be read against growth in work.
"""

from __future__ import annotations

from fidec.bench.settings import BenchSettings
from fidec.bench.update_speed import update_row
from fidec.bench.workloads import build


def scaling_rows(
    settings: BenchSettings, roofline_gflop_per_s: float | None, log=print, measured: list[dict] | None = None
) -> list[dict]:
    """One row per swept value: {"vary": "batch_size" | "width" | "action_dim", "value": ..., timings}.

    ``measured``: update rows of this run; FD's row at the base preset is reused for the base point.
    """
    preset = settings.scaling_preset
    base = build(settings.agent, preset, settings.obs_dim, settings.action_dim).agent.config
    depth = len(base.network.actor_hidden)
    width0, batch0, action0 = base.network.actor_hidden[0], base.batch_size, settings.action_dim
    points = (
        [("batch_size", b, (b, width0, action0)) for b in settings.scaling_batch_sizes]
        + [("width", w, (batch0, w, action0)) for w in settings.scaling_widths]
        + [("action_dim", d, (batch0, width0, d)) for d in settings.scaling_action_dims]
    )
    done: dict[tuple[int, int, int], dict] = {}
    for row in measured or []:
        if row["agent"] == settings.agent and row["preset"] == preset and row["action_dim"] == action0:
            done[batch0, width0, action0] = row
    rows = []
    for vary, value, (batch, width, action_dim) in points:
        if (batch, width, action_dim) not in done:
            overrides = {
                "batch_size": batch,
                "network.actor_hidden": (width,) * depth,
                "network.critic_hidden": (width,) * depth,
            }
            done[batch, width, action_dim] = update_row(
                settings.agent,
                preset,
                settings,
                roofline_gflop_per_s,
                overrides=overrides,
                action_dim=action_dim,
            )
        row = {**done[batch, width, action_dim], "vary": vary, "value": value}
        log(
            f"  {vary:10s} = {value:<5d} {row['ms_per_update']:9.2f} ms/update  "
            f"{row['gflop_per_update']:7.2f} GFLOP  {row['gflop_per_s']:7.1f} GFLOP/s"
        )
        rows.append(row)
    return rows
