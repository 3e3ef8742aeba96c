"""``fidec train``, ``fidec eval`` and ``fidec presets``: thin Typer shells over :func:`fidec.training.train`,
:func:`fidec.training.evaluate_run` and the preset tables, registered on the main CLI in :mod:`fidec.cli`.

Config overrides use one form, ``--set KEY=VALUE`` (repeatable), with the dotted keys of
:class:`fidec.training.TrainConfig`; ``fidec train --show-config`` prints every key, its type and
its resolved value.  Mistakes are one line and exit code 2 (:func:`fidec.errors.user_errors`); a stop
signal exits with 128 + its number after the run saved its state (:mod:`fidec.errors`).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fidec.agents import ACTION_MODES, agent_names
from fidec.config import ConfigError
from fidec.errors import EXIT_FAILURE, EXIT_INTERRUPTED, exit_code_for_signal, fail, user_errors
from fidec.presets import describe, preset_names
from fidec.training.config import DEFAULT_AGENT, DEFAULT_ENV, SCALES, describe_config, make_train_config
from fidec.training.evaluation import check_counts, evaluate_run
from fidec.training.loop import NonFiniteError, RunInterrupted, TrainingStopped, check_runnable, train
from fidec.training.loop import resume as resume_run
from fidec.training.rundir import RunDir, read_config


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """['a.b=1', 'c=x'] -> {'a.b': '1', 'c': 'x'}; values are converted to each field's type later."""
    out = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. --set agent.fisher.t_eps=0.95), got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _print_config(config) -> None:
    table = Table(
        title=f"resolved config ({config.agent_name} on {config.env}, scale {config.scale}): every key --set takes"
    )
    table.add_column("key (--set KEY=VALUE)", no_wrap=True)  # keys stay whole: they are typed back in
    table.add_column("type / allowed values", overflow="fold")
    table.add_column("value", overflow="fold")
    table.add_column("what it is", overflow="fold")
    for row in describe_config(config):
        table.add_row(*(escape(cell) for cell in row))  # values and texts hold [brackets], not markup
    Console().print(table)


TRAIN_EPILOG = (
    f"Scale presets (--preset): {', '.join(SCALES)}. Agent presets (--preset, stackable), e.g. official, "
    "official-grid, paper-networks. The task's presets apply automatically from --env. "
    "`fidec presets` lists every preset, what it sets and where its values come from."
)


def train_command(
    agent: str = typer.Option(DEFAULT_AGENT, "--agent", help=f"Agent: {', '.join(agent_names())}."),
    env: str = typer.Option(DEFAULT_ENV, "--env", help="Task name (OGBench single-task or D4RL)."),
    dataset: Path | None = typer.Option(None, "--dataset", help="Dataset file (default: the task's own)."),
    dataset_dir: Path | None = typer.Option(None, "--dataset-dir", help="Folder of official dataset files."),
    generate_dataset: bool | None = typer.Option(
        None,
        "--generate-dataset/--no-generate-dataset",
        help="Generate a missing OGBench manipulation dataset locally (cached) \\[default: on].",
    ),
    preset: list[str] = typer.Option(
        [], "--preset", help="Scale preset (tiny, cpu, paper) and/or agent presets."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Offline gradient steps."),
    online_steps: int | None = typer.Option(
        None, "--online-steps", help="Online steps after the offline phase."
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Comma-separated seeds, e.g. 0,1,2 (one process)."
    ),
    vmap_seeds: bool | None = typer.Option(
        None,
        "--vmap-seeds/--sequential-seeds",
        help="Train the seeds in one vmapped program, or one after another (default: sequential on a CPU, "
        "vmapped on a GPU).",
        show_default=False,
    ),
    eval_episodes: int | None = typer.Option(None, "--eval-episodes", help="Episodes per evaluation."),
    action_mode: str | None = typer.Option(
        None,
        "--action-mode",
        help=f"Evaluation action selection, one of the agent's modes ({', '.join(ACTION_MODES)}).",
    ),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Output folder (default runs/<agent>-<env>-<time>)."
    ),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder exactly."),
    assignments: list[str] = typer.Option(
        [], "--set", help="Override any config field: --set KEY=VALUE (repeatable; keys: --show-config)."
    ),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write TensorBoard event files."),
    wandb: bool = typer.Option(
        False, "--wandb", help="Also log to wandb (offline mode unless --set wandb_mode=online)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    show_config: bool = typer.Option(
        False, "--show-config", help="Print the resolved config (every key) and exit."
    ),
) -> None:
    """Train an agent offline (then online with --online-steps), evaluate it and write a run directory.

    With no arguments: FD on cube-single-play-singletask-task1-v0 at the CPU scale, generating the
    dataset on first use.  Every config field can be set with --set KEY=VALUE, e.g.
    --set agent.fisher.t_eps=0.95 --set eval_interval=1000; --show-config lists them all with types.
    """
    with user_errors():
        overrides = _train_overrides(
            assignments,
            {
                "dataset": str(dataset) if dataset else None,
                "dataset_dir": str(dataset_dir) if dataset_dir else None,
                "generate_dataset": generate_dataset,
                "steps": steps,
                "online_steps": online_steps,
                "seeds": seeds,
                "eval_episodes": eval_episodes,
                "eval_action_mode": action_mode,
                "run_dir": str(run_dir) if run_dir else None,
                "vmap_seeds": vmap_seeds,
                "tensorboard": True if tensorboard else None,
                "wandb": True if wandb else None,
                "progress": False if no_progress else None,
            },
        )
        if resume is not None:
            explicit = [
                o for o, v in (("--agent", agent != DEFAULT_AGENT), ("--env", env != DEFAULT_ENV)) if v
            ]
            dropped = explicit + ["--preset"] * bool(preset) + ["--run-dir"] * ("run_dir" in overrides)
            if dropped:
                raise ConfigError(
                    f"--resume continues a run with its saved config; drop {', '.join(dropped)}"
                )
            if show_config:
                _print_config(read_config(resume)[0])
                return
            _stops_cleanly(lambda: resume_run(resume, overrides))
            return
        config = check_runnable(
            make_train_config(agent, env, presets=preset, overrides=overrides), None, None
        )
        if show_config:
            _print_config(config)
            return
        _stops_cleanly(lambda: train(config))


def _train_overrides(assignments: list[str], flags: dict[str, object]) -> dict[str, object]:
    """The run's overrides: ``--set`` pairs, then the options given (those left at None are not set)."""
    overrides: dict[str, object] = dict(parse_assignments(assignments))
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return overrides


def _stops_cleanly(run) -> None:
    """Run a training call; a stop signal ends the command with one ``error:`` line (what was saved, how to go
    on) and 128 + its number, divergence with exit code 1."""
    try:
        run()
    except (RunInterrupted, TrainingStopped) as exc:
        raise fail(str(exc), exit_code_for_signal(exc.signum)) from None
    except KeyboardInterrupt:  # a Ctrl-C before fidec's handlers were in place
        raise fail(
            "interrupted before training began: nothing was trained; run the command again", EXIT_INTERRUPTED
        ) from None
    except NonFiniteError as exc:
        raise fail(str(exc), EXIT_FAILURE) from None


def eval_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by fidec train."),
    checkpoint: int | None = typer.Option(
        None, "--checkpoint", help="Checkpoint step (default: the newest)."
    ),
    episodes: int | None = typer.Option(None, "--episodes", help="Episodes per seed (default: the run's)."),
    action_mode: str | None = typer.Option(
        None, "--action-mode", help=f"Action selection, one of the agent's modes ({', '.join(ACTION_MODES)})."
    ),
    num_envs: int | None = typer.Option(None, "--num-envs", help="Vectorised environments per evaluation."),
    video: bool = typer.Option(False, "--video", help="Save a video of the first episode of each seed."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the results (default: the run's evals/; needed for a read-only run)."
    ),
) -> None:
    """Evaluate a saved run in its environment and write evals/step_<step>-<mode>-<episodes>ep.json."""
    with user_errors():
        check_counts(episodes, num_envs, checkpoint, names=("--episodes", "--num-envs", "--checkpoint"))
        record = evaluate_run(
            run_dir, checkpoint, episodes, video, action_mode, num_envs=num_envs, progress=True, out=out
        )
    metric = record["metric"]
    table = Table(title=f"{record['agent']} on {record['env']}, checkpoint step {record['step']}")
    for column in ("seed", metric, "return_mean", "episodes"):
        table.add_column(column)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    for seed, result in record["per_seed"].items():
        table.add_row(seed, fmt(result.get(metric)), fmt(result.get("return_mean")), str(record["episodes"]))
    agg = record["aggregate"]
    table.add_row("mean +- std", f"{fmt(agg['mean'])} +- {fmt(agg['std'])}", "", "")
    console = Console()
    console.print(table)
    console.print(record["protocol"])
    if "video_dir" in record:
        console.print(f"videos: {record['video_dir']}")
    folder = Path(out) if out is not None else RunDir(run_dir).evals_dir
    name = RunDir.eval_record_name(record["step"], record["action_mode"], record["episodes"])
    typer.echo(f"results: {folder / name}", err=True)


def presets_command(
    name: str | None = typer.Argument(None, help="A preset to show in full (default: list them all)."),
    agent: str | None = typer.Option(
        None, "--agent", help="Only this agent's presets (and the shared ones)."
    ),
) -> None:
    """List fidec's presets: scales, every agent's named and per-task presets and the shared ones, with what
    each sets and where its values come from."""
    if agent is not None and agent not in agent_names():
        raise fail(f"unknown agent {agent!r}; agents: {', '.join(agent_names())}")
    rows: list[tuple[str, str, str, str, str]] = []
    for scale in SCALES.values():
        sets = ", ".join(f"{k}={v}" for k, v in scale.overrides.items())
        agent_presets = ", ".join(
            scale.agent_presets + tuple(f"{p} (pixel tasks)" for p in scale.pixel_agent_presets)
        )
        rows.append(
            (
                "every agent",
                scale.name,
                "scale (--preset)",
                f"{sets}" + (f"; agent presets: {agent_presets}" if agent_presets else ""),
                scale.description,
            )
        )
    rows += list(describe(agent))
    if name is not None:
        rows = [r for r in rows if r[1] == name]
        if not rows:
            raise fail(f"unknown preset {name!r}; presets: {', '.join(list(SCALES) + preset_names(agent))}")
    table = Table(
        title="fidec presets (resolution: agent defaults -> task family -> task -> scale -> --preset -> --set)"
    )
    for column in ("agent", "name", "kind", "sets", "what and source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    Console().print(table)
