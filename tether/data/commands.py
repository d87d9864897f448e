"""``tether demos`` (record the scripted expert) and ``tether data info|convert|repair``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tether.cli_types import (
    backend,
    dr_spec, env_id, existing_bag, existing_dir, existing_path, output_dir, positive_int, ros_topic, seed,
)
from tether.errors import TetherError

MAPPINGS = ("flat", "ros2-control", "arm-ros2-control")


def new_dataset_dir(text: str) -> Path:
    """``--out`` of ``tether demos``: a writable place for a new dataset (a new or empty directory)."""
    p = output_dir(text)
    if p.is_dir() and any(p.iterdir()):
        what = "a dataset already" if (p / "meta" / "info.json").exists() else "files"
        raise argparse.ArgumentTypeError(f"{str(p)!r} already holds {what}; expected a new or empty directory")
    return p


def mapping(text: str) -> str:
    """``--mapping``: flat, ros2-control, arm-ros2-control or a JSON topic-mapping file."""
    if text.lower().endswith(".json"):
        from tether.cli_types import existing_file

        return str(existing_file(text))
    if text not in MAPPINGS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a mapping; expected {', '.join(MAPPINGS)} or a .json file")
    return text


def register(sub: argparse._SubParsersAction) -> None:
    demos = sub.add_parser("demos", help="record scripted-expert episodes of an env into a dataset")
    demos.add_argument("env_id", type=env_id, help="e.g. tether/QuadrotorHover-v0")
    demos.add_argument("--episodes", type=positive_int, default=10)
    demos.add_argument("--out", required=True, type=new_dataset_dir, help="dataset directory to create (new or empty)")
    demos.add_argument("--seed", type=seed, default=0)
    demos.add_argument("--dr", default="none", type=dr_spec,
                       help="domain-randomisation preset (none | default | wide) or JSON file")
    demos.add_argument("--backend", default="mujoco", type=backend, metavar="{mujoco,pybullet}")
    demos.add_argument("--max-steps", type=positive_int, default=None, help="cut episodes at this many steps")
    demos.set_defaults(func=_demos)

    data = sub.add_parser("data", help="inspect, convert and repair episode datasets")
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    info = dsub.add_parser("info", help="summarise a dataset (recovering an interrupted one in memory)")
    info.add_argument("dir", type=existing_dir)
    info.add_argument("--json", action="store_true", help="print info.json and stats instead")
    info.set_defaults(func=_info)
    conv = dsub.add_parser("convert", help="rosbag2 recording(s) → dataset, one episode per bag")
    conv.add_argument("bags", nargs="+", metavar="BAG", type=existing_bag,
                      help="rosbag2 directories or .mcap/.db3 files")
    conv.add_argument("--contract", required=True, type=existing_path,
                      help="checkpoint directory, checkpoint/contract JSON, or dataset whose contract to use")
    conv.add_argument("--out", required=True, type=output_dir)
    conv.add_argument("--mapping", default="flat", type=mapping,
                      help="flat | ros2-control | a JSON topic-mapping file (see tether.data.rosbag_import)")
    conv.add_argument("--command-topic", default=None, type=ros_topic, help="ros2-control: the command topic")
    conv.add_argument("--joint-states", default=None, type=ros_topic, help="ros2-control: the joint state topic")
    conv.add_argument("--append", action="store_true", help="add episodes to an existing dataset")
    conv.set_defaults(func=_convert)
    rep = dsub.add_parser("repair", help="write what an interrupted recording left as a clean dataset")
    rep.add_argument("dir", type=existing_dir)
    rep.set_defaults(func=_repair)


def load_contract(path: str | Path) -> Any:
    """The IOContract in a checkpoint directory (checkpoint.json), a JSON file (a contract, or any object
    with a "contract" key), or a dataset (meta/info.json). Files are read bounded and schema-checked
    (``tether.validation``); a symbolic link is refused."""
    from tether.validation import contract_from_data, read_json

    p = Path(path)
    candidates = []
    if p.is_dir():
        candidates = [p / "checkpoint.json", p / "contract.json", p / "meta" / "info.json"]
    elif p.is_file():
        candidates = [p]
    else:
        raise TetherError(f"contract source {p} does not exist; expected a checkpoint directory or a JSON file")
    for c in candidates:
        if not c.exists() and not c.is_symlink():
            continue
        d = read_json(c, "contract source", follow_link=c == p)  # the typed file may be a link; files inside not
        if isinstance(d, dict):
            if isinstance(d.get("tether"), dict) and "contract" in d["tether"]:
                return contract_from_data(d["tether"]["contract"], f"{c}: tether.contract")
            if "contract" in d:
                return contract_from_data(d["contract"], f"{c}: contract")
            if "observations" in d and "actions" in d:
                return contract_from_data(d, str(c))
    raise TetherError(f"no IOContract found in {p}; expected checkpoint.json, a contract JSON or a dataset")


def _demos(args: argparse.Namespace) -> int:
    from tether.data.demos import record_episodes
    from tether.sim.randomization import check_dr_option
    from tether.sim.registry import parse_env_id

    parse_env_id(args.env_id)  # one-line error for an unknown id before anything is written
    check_dr_option(args.dr)
    meta = {"source": "demos", "env_id": args.env_id, "backend": args.backend, "dr": args.dr, "seed": args.seed,
            "policy": "expert"}

    def progress(ep: int, steps: int, ret: float, success: bool) -> None:
        print(f"episode {ep + 1}/{args.episodes}: {steps} steps, return {ret:.2f}, "
              f"{'success' if success else 'no success'}", flush=True)

    ds = record_episodes(args.env_id, str(args.out), args.episodes, seed=args.seed, max_steps=args.max_steps,
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

    kwargs = {}
    if args.mapping in ("ros2-control", "arm-ros2-control"):
        if args.command_topic:
            kwargs["command_topic"] = args.command_topic
        if args.joint_states:
            kwargs["joint_states"] = args.joint_states
    elif args.command_topic or args.joint_states:
        raise TetherError("--command-topic/--joint-states apply to --mapping ros2-control only")
    try:
        contract = load_contract(args.contract)
    except TetherError as exc:
        raise TetherError(f"--contract: {exc}") from None
    ds = convert_bags([str(b) for b in args.bags], contract, str(args.out), args.mapping, append=args.append,
                      **kwargs)
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
