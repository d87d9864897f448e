"""``tether sim list`` and ``tether sim rollout``: see what exists, and run it with a trivial policy."""

from __future__ import annotations

import argparse

from tether.cli_types import backend, dr_spec, env_id, name, output_file, positive_int, seed


def register(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="list robots/tasks/DR presets; roll out an env")
    simsub = sim.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)
    ls = simsub.add_parser("list", help="robots, tasks, env ids, control modes and DR presets")
    ls.set_defaults(func=_list)
    ro = simsub.add_parser("rollout", help="run an env with a random or zero policy")
    ro.add_argument("env_id", type=env_id, help="e.g. tether/ArmReach-v0")
    ro.add_argument("--policy", default="random", choices=("random", "zero", "expert"))
    ro.add_argument("--backend", default="mujoco", type=backend, metavar="{mujoco,pybullet}")
    ro.add_argument("--dr", default="none", type=dr_spec, help="DR preset name or a JSON file of terms")
    ro.add_argument("--control-mode", default=None, type=name)
    ro.add_argument("--steps", type=positive_int, default=500)
    ro.add_argument("--seed", type=seed, default=0)
    ro.add_argument("--video", default=None, type=output_file((".mp4", ".gif")), help="write an mp4 of the rollout")
    ro.set_defaults(func=_rollout)


def _list(args: argparse.Namespace) -> int:
    from tether.sim.randomization import TARGETS
    from tether.sim.registry import all_env_ids
    from tether.sim.robots import ROBOTS, make_robot
    from tether.sim.tasks import TASKS, make_task

    print("env ids:")
    for eid, (robot, task, kwargs) in sorted(all_env_ids().items()):
        spec = make_robot(robot)
        t = make_task(robot, task, spec, **kwargs)
        c = t.contract
        print(f"  {eid:34s} obs {c.obs_size:3d}  act {c.action_size:2d}  {c.rate_hz:g} Hz  "
              f"modes: {', '.join(t.control_modes)}")
    print("robots and DR presets:")
    for robot in ROBOTS:
        spec = make_robot(robot)
        tasks = [t for (r, t) in TASKS if r == robot]
        print(f"  {robot:10s} tasks: {', '.join(tasks):24s} DR presets: {', '.join(spec.dr_presets)}")
    print("backends: mujoco, pybullet")
    print("DR targets: " + ", ".join(TARGETS))
    return 0


def _rollout(args: argparse.Namespace) -> int:
    import numpy as np

    import tether.sim
    from tether.sim.randomization import check_dr_option
    from tether.sim.registry import parse_env_id

    parse_env_id(args.env_id)
    check_dr_option(args.dr)
    kwargs = {"backend": args.backend, "dr": args.dr}
    if args.control_mode:
        kwargs["control_mode"] = args.control_mode
    env = tether.sim.make(args.env_id, **kwargs)
    obs, _ = env.reset(seed=args.seed)
    frames, episodes, ret, returns, successes = [], 0, 0.0, [], []
    env.action_space.seed(args.seed)
    for _ in range(args.steps):
        if args.policy == "random":
            a = env.action_space.sample()
        elif args.policy == "zero":
            a = np.zeros(env.action_space.shape, dtype=np.float32)
        else:
            a = env.unwrapped.expert_action()
        obs, r, term, trunc, info = env.step(a)
        ret += r
        if args.video:
            frames.append(env.unwrapped.render())
        if term or trunc:
            episodes += 1
            returns.append(ret)
            successes.append(bool(info.get("success", False)))
            ret = 0.0
            obs, _ = env.reset()
    if not returns:
        returns.append(ret)
    print(f"{args.env_id} on {args.backend} (DR {args.dr}, policy {args.policy}): {args.steps} steps, "
          f"{episodes} episodes ended, return {np.mean(returns):.2f} ± {np.std(returns):.2f}, "
          f"success {np.mean(successes) if successes else 0.0:.0%}")
    if args.video:
        import imageio.v2 as imageio

        fps = int(env.unwrapped.robot_spec.control_rate_hz)
        imageio.mimwrite(args.video, frames, fps=fps, macro_block_size=1)
        print(f"video: {args.video} ({len(frames)} frames)")
    env.close()
    return 0
