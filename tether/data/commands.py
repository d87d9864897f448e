"""``tether demos`` (record the scripted expert) and ``tether data info|convert|repair``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tether.errors import TetherError


def register(sub: argparse._SubParsersAction) -> None:
    demos = sub.add_parser("demos", help="record scripted-expert episodes of an env into a dataset")
    demos.add_argument("env_id", help="e.g. tether/QuadrotorHover-v0")
    demos.add_argument("--episodes", type=int, default=10)
    demos.add_argument("--out", required=True, help="dataset directory to create")
    demos.add_argument("--seed", type=int, default=0)
    demos.add_argument("--dr", default="none", help="domain-randomisation preset (none | default | wide) or JSON file")
    demos.add_argument("--backend", default="mujoco", help="mujoco | pybullet")
    demos.add_argument("--max-steps", type=int, default=None, help="cut episodes at this many steps")
    demos.set_defaults(func=_demos)

    data = sub.add_parser("data", help="inspect, convert and repair episode datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    info = dsub.add_parser("info", help="summarise a dataset (recovering an interrupted one in memory)")
    info.add_argument("dir")
    info.add_argument("--json", action="store_true", help="print info.json and stats instead")
    info.set_defaults(func=_info)
    conv = dsub.add_parser("convert", help="rosbag2 recording(s) → dataset, one episode per bag")
    conv.add_argument("bags", nargs="+", metavar="BAG", help="rosbag2 directories or .mcap/.db3 files")
    conv.add_argument("--contract", required=True,
                      help="checkpoint directory, checkpoint/contract JSON, or dataset whose contract to use")
    conv.add_argument("--out", required=True)
    conv.add_argument("--mapping", default="flat",
                      help="flat | ros2-control | a JSON topic-mapping file (see tether.data.rosbag_import)")
    conv.add_argument("--command-topic", default=None, help="ros2-control: the command topic")
    conv.add_argument("--joint-states", default=None, help="ros2-control: the joint state topic")
    conv.add_argument("--append", action="store_true", help="add episodes to an existing dataset")
    conv.set_defaults(func=_convert)
    rep = dsub.add_parser("repair", help="write what an interrupted recording left as a clean dataset")
    rep.add_argument("dir")
    rep.set_defaults(func=_repair)


def load_contract(path: str | Path) -> Any:
    """The IOContract in a checkpoint directory (checkpoint.json), a JSON file (a contract, or any object
    with a "contract" key), or a dataset (meta/info.json)."""
    from tether.contract import IOContract

    p = Path(path)
    candidates = []
    if p.is_dir():
        candidates = [p / "checkpoint.json", p / "contract.json", p / "meta" / "info.json"]
    elif p.is_file():
        candidates = [p]
    else:
        raise TetherError(f"contract source {p} does not exist; expected a checkpoint directory or a JSON file")
    for c in candidates:
        if not c.is_file():
            continue
        try:
            d = json.loads(c.read_text())
        except json.JSONDecodeError as exc:
            raise TetherError(f"{c} is not valid JSON: {exc}") from None
        if isinstance(d, dict):
            if isinstance(d.get("tether"), dict) and "contract" in d["tether"]:
                return IOContract.from_dict(d["tether"]["contract"])
            if "contract" in d:
                return IOContract.from_dict(d["contract"])
            if "observations" in d and "actions" in d:
                return IOContract.from_dict(d)
    raise TetherError(f"no IOContract found in {p}; expected checkpoint.json, a contract JSON or a dataset")


def _demos(args: argparse.Namespace) -> int:
    from tether.data.demos import record_episodes
    from tether.sim.registry import parse_env_id

    parse_env_id(args.env_id)  # one-line error for an unknown id before anything is written
    meta = {"source": "demos", "env_id": args.env_id, "backend": args.backend, "dr": args.dr, "seed": args.seed,
            "policy": "expert"}

    def progress(ep: int, steps: int, ret: float, success: bool) -> None:
        print(f"episode {ep + 1}/{args.episodes}: {steps} steps, return {ret:.2f}, "
              f"{'success' if success else 'no success'}", flush=True)

    ds = record_episodes(args.env_id, args.out, args.episodes, seed=args.seed, max_steps=args.max_steps,
                         metadata=meta, progress=progress, env_kwargs={"backend": args.backend, "dr": args.dr})
    print(ds.summary())
    return 0


def _info(args: argparse.Namespace) -> int:
    from tether.data.dataset import Dataset

    ds = Dataset(args.dir)
    if args.json:
        print(json.dumps({"info": ds.info, "stats": ds.stats, "notes": ds.notes}, indent=2))
    else:
        print(ds.summary())
    return 0


def _convert(args: argparse.Namespace) -> int:
    from tether.data.rosbag_import import convert_bags

    contract = load_contract(args.contract)
    kwargs = {}
    if args.mapping in ("ros2-control", "arm-ros2-control"):
        if args.command_topic:
            kwargs["command_topic"] = args.command_topic
        if args.joint_states:
            kwargs["joint_states"] = args.joint_states
    elif args.command_topic or args.joint_states:
        raise TetherError("--command-topic/--joint-states apply to --mapping ros2-control only")
    ds = convert_bags(args.bags, contract, args.out, args.mapping, append=args.append, **kwargs)
    print(ds.summary())
    return 0


def _repair(args: argparse.Namespace) -> int:
    from tether.data.dataset import Dataset, repair

    before = Dataset(args.dir)
    notes = list(before.notes)
    ds = repair(args.dir)
    for n in notes:
        print(f"repaired: {n}")
    print(ds.summary())
    return 0
