"""``report.md`` and its PNG plots for a pipeline run: what each stage bought, robot time, tracking, residuals."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

CONFIRM_PHASE = "kept, fresh episodes"  # the pipeline's phase of the kept policy's fresh episodes


def _learning_curve(train_dir: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    path = train_dir / "metrics.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    for key in ("eval/return_mean", "train/episode_return", "rollout/return_mean"):
        pts = [(float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
        if len(pts) >= 2:
            a = np.array(pts)
            return a[:, 0], a[:, 1], key
    return None


def _robot_rl_rows(summary: dict[str, Any], phases: dict[str, Any]) -> list[str]:
    rl = summary.get("robot_rl")
    if not rl:
        return []
    rounds = phases["robot RL"]
    return [f"| robot RL (episodes with exploration, learning between them) | {rounds.success_rate:.0%} | "
            f"{rounds.final_error:.3f} | {rounds.robot_seconds:.0f} s |",
            f"| after robot RL | {rl['served_success']:.0%} | {rl['served_final_error']:.3f} | "
            f"{phases['after robot RL'].robot_seconds:.0f} s |"]


def _kept_text(summary: dict[str, Any], phases: dict[str, Any]) -> str:
    """Which policy was kept, and its served success: on fresh episodes when they ran, else the score it was chosen
    on (which leans high: it is the best of several)."""
    sim, kept = summary["sim_success"], summary["served_success_kept"]
    share = f"{(kept / sim if sim else float('nan')):.0%} of sim success"
    head = f"Kept: the **{summary['kept']}** policy, the one the served robot scored best ("
    if summary.get("kept_confirmed"):
        fresh = phases[CONFIRM_PHASE]
        return (head + f"{summary['served_success_kept_selection']:.0%} on the episodes it was chosen on); on "
                f"{len(fresh.successes)} fresh episode{'s' * (len(fresh.successes) != 1)} it succeeded in {kept:.0%}, "
                f"{share}.")
    return (head + f"{kept:.0%}, {share}; not rerun on fresh episodes, so this leans high).")


def _robot_rl_text(summary: dict[str, Any]) -> str:
    rl = summary.get("robot_rl")
    if rl:
        return (f"Robot RL ran {rl['episodes']} episodes on the served robot from the {rl['start']} policy "
                f"(RLPD-style: robot and identified-sim transitions mixed, updates between episodes).")
    return f"Robot RL did not run: {summary['robot_rl_skipped']}."


def write_report(cfg: Any, summary: dict[str, Any], phases: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tether.policies.checkpoint import load_checkpoint
    from tether.sim.tasks.scoring import error_label

    out = Path(cfg.out)
    contract = load_checkpoint(summary["checkpoints"]["sim"]).contract
    label = error_label(contract)
    figs: list[tuple[str, str]] = []

    curve = _learning_curve(out / "train")
    if curve is not None:
        steps, values, key = curve
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, values, marker="o")
        ax.set_xlabel("env steps")
        ax.set_ylabel(key)
        ax.set_title(f"{cfg.algo.upper()} on {summary['env_id']} (MuJoCo, DR '{cfg.dr}')")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "learning_curve.png", dpi=110)
        plt.close(fig)
        figs.append(("Learning curve", "learning_curve.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = ["sim (MuJoCo, nominal)", "served, zero-shot", "served, fine-tuned"]
    values = [summary["sim_success"], summary["served_success_zero_shot"], summary["served_success_tuned"]]
    colours = ["tab:blue", "tab:red", "tab:green"]
    if summary.get("robot_rl"):
        names.append("served, robot RL")
        values.append(summary["robot_rl"]["served_success"])
        colours.append("tab:purple")
    if summary.get("kept_confirmed"):
        names.append("served, kept\n(fresh episodes)")
        values.append(summary["served_success_kept"])
        colours.append("tab:gray")
    ax.bar(np.arange(len(names)), values, color=colours)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate")
    fig.tight_layout()
    fig.savefig(out / "success.png", dpi=110)
    plt.close(fig)
    figs.append(("Success: sim, zero-shot on the served robot, after fine-tuning", "success.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    dt = 1.0 / contract.rate_hz
    colors = {"zero-shot": "tab:red", "probe": "tab:orange", "fine-tuned": "tab:green", "robot RL": "tab:pink",
              "after robot RL": "tab:purple", CONFIRM_PHASE: "tab:gray"}
    for name, phase in phases.items():
        for i, e in enumerate(phase.errors):
            ax.plot(np.arange(len(e)) * dt, e, color=colors.get(name, "gray"), alpha=0.6,
                    label=name if i == 0 else None)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(label)
    ax.set_title("Tracking on the served robot")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "tracking.png", dpi=110)
    plt.close(fig)
    figs.append(("Tracking on the served robot", "tracking.png"))

    identified = summary.get("identified") or {}
    residual_pngs = sorted((out / "identify").glob("*.png")) if (out / "identify").is_dir() else []
    t = summary["timings_s"]
    sim = summary["sim_success"]
    on_id = (summary.get("identified") or {}).get("sim_success")
    lines = [
        f"# Tether pipeline: {summary['robot']}/{summary['task']}",
        "",
        f"Trained {summary['algo'].upper()} in MuJoCo under DR preset `{cfg.dr}`, then met a served "
        f"{cfg.real_backend} robot with parameters outside that DR (`{cfg.real}`, {cfg.latency_ms:g} ms each way) "
        f"over ROS 2 DDS ({cfg.adapter} topics).",
        "",
        "| stage | served-robot success | served final " + label + " | robot time |",
        "|---|---|---|---|",
        f"| zero-shot (sim-trained policy) | {summary['served_success_zero_shot']:.0%} | "
        f"{summary['served_final_error_zero_shot']:.3f} | {phases['zero-shot'].robot_seconds:.0f} s |",
        f"| probe (bounded exploration, for identification) | {phases['probe'].success_rate:.0%} | "
        f"{phases['probe'].final_error:.3f} | {phases['probe'].robot_seconds:.0f} s |",
        f"| after {'identification + sim fine-tuning' if summary['finetune'] == 'sim' else summary['finetune'].upper()}"
        f" | {summary['served_success_tuned']:.0%} | {summary['served_final_error_tuned']:.3f} | "
        f"{phases['fine-tuned'].robot_seconds:.0f} s |",
        *_robot_rl_rows(summary, phases),
        *([f"| the kept policy ({summary['kept']}) on fresh episodes | {phases[CONFIRM_PHASE].success_rate:.0%} | "
           f"{phases[CONFIRM_PHASE].final_error:.3f} | {phases[CONFIRM_PHASE].robot_seconds:.0f} s |"]
          if CONFIRM_PHASE in phases else []),
        "",
        f"Sim success (MuJoCo, nominal robot): {sim:.0%} (fine-tuned policy, tuned for the robot as identified: "
        f"{summary['sim_success_tuned']:.0%}"
        + (f"; under the identified DR: {on_id['zero_shot']:.0%} zero-shot, {on_id['tuned']:.0%} fine-tuned"
           if on_id else "") + "). " + _kept_text(summary, phases) + " Robot time used: "
        f"{summary['robot_seconds'] / 60:.1f} min over {summary['robot_episodes']} episodes.",
        "",
        _robot_rl_text(summary),
        "",
    ]
    if identified.get("error"):
        lines += ["## Identification", "", f"Not identified: {identified['error']}. Fine-tuned under the training "
                  f"DR `{cfg.dr}` instead.", ""]
    elif identified:
        fit = "\n".join(ln for ln in str(identified.get("fit")).splitlines() if not ln.strip().startswith("note:"))
        lines += ["## Identification", "", "```", fit, "```", "(Per-bag notes in identify/sysid.json.)", ""]
        lines += [f"![residuals]({p.relative_to(out)})" for p in residual_pngs] + [""]
    lines += [
        "Control loop on the served robot (per episode): "
        + "; ".join(f"{s.get('rate_hz', float('nan')):.1f} Hz, p99 latency {s.get('latency_p99_ms', float('nan')):.2f} ms"
                    for p in phases.values() for s in p.loop_stats),
        "",
        "Stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + f"; total {summary['total_s'] / 60:.1f} min.",
        "",
        f"Checkpoints: zero-shot `{summary['checkpoints']['sim']}`, fine-tuned `{summary['checkpoints']['finetuned']}`; "
        f"bags in `{out / 'bags'}`; TensorBoard logs in `{out / 'train' / 'tb'}`.",
        "",
    ]
    for title, name in figs:
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
