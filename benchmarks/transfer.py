"""Sim-to-real transfer: robots x served-robot parameter sets, through the whole pipeline.

For each robot, one policy is trained in MuJoCo under the robot's wide DR (as ``tether pipeline`` does); then
for each parameter set a served PyBullet robot with those hidden parameters (outside or at the edge of the
training DR, on both sides of nominal) is met over ROS 2 DDS: zero-shot success, then identification from the
recorded bags and sim fine-tuning under the identified DR, then success again, and robot RL on the served robot
when the pipeline's rule runs it (the best policy keeps under 95 % of sim). The table gives sim success, the
served successes after each stage (and the kept one's ratio to sim: on its fresh episodes when the budget held
them, and on the episodes it was chosen on, which leans high), robot minutes used, and wall time per row.

Usage: python benchmarks/transfer.py [--robots quadrotor,quadrotor/waypoint] [--sets heavy,light,...] [--episodes 4]
       [--sim-episodes 20] [--checkpoint CKPT] [--seed 0] [--out DIR]   (ROBOT or ROBOT/TASK; a robot's parameter sets serve every task of it;
       --checkpoint starts one ROBOT/TASK from a sim-trained policy instead of training one, so rows can be
       rerun on the same parent)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

# served-robot parameter sets per robot: (name, robot serve --params, one-way latency ms)
SETS: dict[str, list[tuple[str, dict, float]]] = {
    "quadrotor": [
        ("heavy, slow motors", {"scale": {"body_mass": 1.6, "motor_time_constant": 3.0}}, 20.0),
        ("light, fast motors", {"scale": {"body_mass": 0.65, "motor_time_constant": 0.4}}, 20.0),
        # thrust-to-weight 2.25 x 0.7 = 1.6 (a weak-motor set with mass x1.3 and strength x0.8 on top leaves 1.04:
        # it cannot hover with any margin, and identification rightly sees mass/thrust x2.2)
        ("weak motors", {"scale": {"actuator_gain": 0.7}}, 20.0),
        ("nominal body, 40 ms each way", {"scale": {"body_mass": 1.1}}, 40.0),
        ("heavier still, slower motors", {"scale": {"body_mass": 1.8, "motor_time_constant": 3.5}}, 20.0),
        ("light and slow motors, 30 ms each way", {"scale": {"body_mass": 0.6, "motor_time_constant": 2.8}}, 30.0),
        ("strong and fast motors, heavier",
         {"scale": {"actuator_gain": 1.35, "motor_time_constant": 0.35, "body_mass": 1.2}}, 10.0),
    ],
    "arm": [
        ("heavy, damped", {"scale": {"body_mass": 1.3, "joint_damping": 3.0}}, 10.0),
        # no hidden parameter: the gap of the served robot's own simulator (PyBullet contact and friction) alone
        ("nominal", {"scale": {}}, 10.0),
        ("weak joints", {"scale": {"actuator_gain": 0.6}}, 10.0),
        ("light and loose, 25 ms each way",
         {"scale": {"body_mass": 0.6, "joint_damping": 0.3, "actuator_gain": 1.4}}, 25.0),
        ("weak and stiff, slippery",
         {"scale": {"actuator_strength": 0.6, "joint_damping": 2.5, "friction": 0.3}}, 10.0),
        ("heavy and weak, 40 ms each way", {"scale": {"body_mass": 1.5, "actuator_gain": 0.7}}, 40.0),
    ],
    "legged": [
        ("heavy, weak", {"scale": {"body_mass": 1.3, "actuator_gain": 0.7}}, 10.0),
        ("light, stiff", {"scale": {"body_mass": 0.8, "actuator_gain": 1.3}}, 10.0),
        ("slippery ground, heavier", {"scale": {"friction": 0.25, "body_mass": 1.2}}, 20.0),
        ("light and weak, 25 ms each way",
         {"scale": {"body_mass": 0.7, "actuator_gain": 0.7, "actuator_strength": 0.7}}, 25.0),
        ("heavy and stiff, 40 ms each way", {"scale": {"body_mass": 1.25, "actuator_gain": 1.3}}, 40.0),
    ],
}


def main() -> None:
    from tether.pipeline.config import PipelineConfig
    from tether.pipeline.run import run_pipeline
    from tether.pipeline.stages import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--robots", default="quadrotor")
    ap.add_argument("--sets", default=None, help="comma-separated set names (default: all of each robot)")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--sim-episodes", type=int, default=20, help="sim evaluation episodes per policy")
    ap.add_argument("--checkpoint", type=Path, default=None, help="sim-trained policy of the one --robots item")
    ap.add_argument("--seed", type=int, default=0,
                    help="the pipeline's seed (training, demonstrations, fine-tuning, the served robots' start states)")
    ap.add_argument("--out", type=Path, default=Path("runs") / time.strftime("transfer-%Y%m%d-%H%M%S"))
    args = ap.parse_args()
    if args.checkpoint is not None and "," in args.robots:
        ap.error("--checkpoint serves one --robots item")
    print(f"# transfer  {time.strftime('%Y-%m-%d %H:%M')}  {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    print("| robot | served robot (hidden params, latency) | sim success | zero-shot | after identification + "
          "sim fine-tuning | after robot RL | kept / sim (fresh episodes; as chosen) | final error zero-shot → tuned | "
          "identified (scale) | sim on identified DR zero-shot → tuned | robot min | wall min |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for item in args.robots.split(","):
        robot, _, task = item.partition("/")
        task = task or None
        base = PipelineConfig(robot=robot, task=task, episodes=args.episodes, seed=args.seed,
                              out=args.out / item / "train").resolved()
        t0 = time.perf_counter()
        ckpt = args.checkpoint if args.checkpoint is not None else train(base, lambda _m: None)
        train_min = (time.perf_counter() - t0) / 60
        for name, params, latency in SETS[robot]:
            if args.sets and name.split(",")[0] not in args.sets.split(","):
                continue
            out = args.out / item / name.replace(" ", "_").replace(",", "")
            cfg = PipelineConfig(robot=robot, task=task, episodes=args.episodes, real=params, latency_ms=latency,
                                 checkpoint=str(ckpt), out=out, sim_eval_episodes=args.sim_episodes, seed=args.seed)
            t1 = time.perf_counter()
            s = run_pipeline(cfg, log=lambda _m: None)
            wall = (time.perf_counter() - t1) / 60 + train_min
            sim = s["sim_success"] or float("nan")  # kept: on fresh episodes when they ran; as chosen: biased high
            kept = (f"{s['served_success_kept'] / sim:.0%}" if s["kept_confirmed"] else "-") + (
                f"; {s['served_success_kept_selection'] / sim:.0%}")
            ident = s.get("identified") or {}
            fit = ", ".join(f"{k} ×{v:.3g}" for k, v in (ident.get("report", {}).get("scale") or {}).items())
            on_id = ident.get("sim_success") or {}
            on_id_text = f"{on_id['zero_shot']:.0%} → {on_id['tuned']:.0%}" if on_id else "-"
            rl = s.get("robot_rl")
            rl_text = f"{rl['served_success']:.0%} ({rl['episodes']} episodes)" if rl else "not run"
            print(f"| {base.robot}/{base.task} | {name}: {params['scale']}, {latency:g} ms | {s['sim_success']:.0%} | "
                  f"{s['served_success_zero_shot']:.0%} | {s['served_success_tuned']:.0%} | {rl_text} | {kept} | "
                  f"{s['served_final_error_zero_shot']:.3f} → {s['served_final_error_tuned']:.3f} | {fit or '-'} | "
                  f"{on_id_text} | {s['robot_seconds'] / 60:.1f} | {wall:.1f} |", flush=True)
            rows.append({"robot": robot, "task": base.task, "set": name, "params": params, "latency_ms": latency, **{
                k: s[k] for k in ("sim_success", "served_success_zero_shot", "served_success_tuned", "kept",
                                  "kept_confirmed", "served_success_kept", "served_success_kept_selection",
                                  "served_final_error_zero_shot", "served_final_error_tuned", "robot_seconds",
                                  "robot_rl")},
                "identified_scale": (ident.get("report") or {}).get("scale"), "sim_on_identified": on_id or None,
                "wall_min_incl_training": wall})
    (args.out / "transfer.json").write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
