"""``report.md`` and its PNG plots for a pipeline run: learning curve, success before/after, tracking."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np


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


def write_report(cfg: Any, summary: dict[str, Any], before: Any, after: Any) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tether.sim.tasks.scoring import error_label
    from tether.policies.checkpoint import load_checkpoint

    out = Path(cfg.out)
    contract = load_checkpoint(summary["checkpoints"]["sim"]).contract
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
    labels = ["sim (MuJoCo)", f"served robot ({cfg.real_backend}, unseen params)"]
    x = np.arange(2)
    ax.bar(x - 0.18, [summary["sim_success_before"], summary["served_success_before"]], 0.36, label="before fine-tuning")
    ax.bar(x + 0.18, [summary["sim_success_after"], summary["served_success_after"]], 0.36, label="after fine-tuning")
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "success.png", dpi=110)
    plt.close(fig)
    figs.append(("Success, sim vs served robot", "success.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    dt = 1.0 / contract.rate_hz
    for i, e in enumerate(before.errors):
        ax.plot(np.arange(len(e)) * dt, e, color="tab:red", alpha=0.6, label="before" if i == 0 else None)
    for i, e in enumerate(after.errors):
        ax.plot(np.arange(len(e)) * dt, e, color="tab:green", alpha=0.6, label="after" if i == 0 else None)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(error_label(contract))
    ax.set_title("Tracking on the served robot")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "tracking.png", dpi=110)
    plt.close(fig)
    figs.append(("Tracking on the served robot", "tracking.png"))

    t = summary["timings_s"]
    lines = [
        f"# Tether pipeline: {summary['robot']}/{summary['task']}",
        "",
        f"Trained {summary['algo'].upper()} in MuJoCo under DR preset `{cfg.dr}`, deployed over ROS 2 DDS "
        f"({cfg.adapter} topics) to a served {cfg.real_backend} robot with parameters it never saw "
        f"(`{cfg.real}`), recorded {len(before.bags)} episodes, fine-tuned with {cfg.finetune_algo.upper()} on "
        f"that data plus the simulator, and deployed again.",
        "",
        *([f"Fine-tuning kept the sim-trained policy: no {cfg.finetune_algo.upper()} update beat it on the held-out "
           "slice of the real data, so the \"after\" deployment runs the same weights."]
          if summary.get("finetune_selection") == "parent" else []),
        "",
        "| | before fine-tuning | after fine-tuning |",
        "|---|---|---|",
        f"| sim success (MuJoCo) | {summary['sim_success_before']:.0%} | {summary['sim_success_after']:.0%} |",
        f"| served-robot success | {summary['served_success_before']:.0%} | {summary['served_success_after']:.0%} |",
        f"| served-robot final {error_label(contract)} | {summary['served_final_error_before']:.3f} | "
        f"{summary['served_final_error_after']:.3f} |",
        "",
        "Control loop on the served robot (per episode): "
        + "; ".join(f"{s.get('rate_hz', float('nan')):.1f} Hz, p99 latency {s.get('latency_p99_ms', float('nan')):.2f} ms"
                    for s in before.loop_stats + after.loop_stats),
        "",
        "Stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + f"; total {summary['total_s'] / 60:.1f} min.",
        "",
        f"Checkpoints: `{summary['checkpoints']['sim']}` → `{summary['checkpoints']['finetuned']}`; "
        f"dataset `{summary['dataset']}`; bags in `{out / 'bags'}`; TensorBoard logs in `{out / 'train' / 'tb'}`.",
        "",
    ]
    for title, name in figs:
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
