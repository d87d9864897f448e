"""``tether calibrate camera | handeye | sysid | latency``: each prints a short report and writes its result.

Heavy imports (OpenCV, MuJoCo, scipy) happen inside the handlers so ``tether --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from tether.errors import TetherError

ROBOT_KINDS = ("quadrotor", "arm", "legged")


def register(subparsers: argparse._SubParsersAction) -> None:
    cal = subparsers.add_parser("calibrate", help="camera intrinsics, hand-eye, system identification, latency")
    sub = cal.add_subparsers(dest="calibrate_command", metavar="WHAT", required=True)

    cam = sub.add_parser("camera", help="camera intrinsics from board images -> ROS camera_info YAML")
    cam.add_argument("images", nargs="+", help="board images (PNG/JPEG), one camera, one resolution")
    _board_args(cam)
    cam.add_argument("--model", default="plumb_bob", choices=["plumb_bob", "rational_polynomial"])
    cam.add_argument("--name", default="camera", help="camera_name written into the YAML")
    cam.add_argument("--out", default="camera.yaml", help="camera_info YAML to write (report JSON beside it)")
    cam.set_defaults(func=_camera)

    he = sub.add_parser("handeye", help="camera mounting from paired robot poses and board poses/images")
    he.add_argument("samples", help="samples JSON or NPZ (format: tether.calibration.io docstring)")
    he.add_argument("--setup", choices=["eye_in_hand", "eye_to_hand"], default=None,
                    help="default: the samples file's 'setup', else eye_in_hand")
    he.add_argument("--method", default="refined", help="tsai, park, horaud, andreff, daniilidis, shah, li or refined")
    he.add_argument("--parent", default=None, help="parent frame (default from file, else gripper/base)")
    he.add_argument("--child", default=None, help="child frame (default camera_optical_frame)")
    he.add_argument("--min-rotation-deg", type=float, default=3.0)
    he.add_argument("--bootstrap", type=int, default=50)
    he.add_argument("--seed", type=int, default=0)
    he.add_argument("--out", default="handeye.json", help="result JSON (transform, tf_static, report)")
    he.set_defaults(func=_handeye)

    lat = sub.add_parser("latency", help="actuation/sensing delay from a command/response log")
    lat.add_argument("data", help="log (.npz/.json) with t, command, response [, t_response, t_received]")
    lat.add_argument("--period", type=float, default=None, help="control period in s (default: from stamps)")
    lat.add_argument("--max-delay", type=float, default=0.5, help="largest delay searched, s")
    lat.add_argument("--dr-preset", default=None, help="DR preset JSON to update (created if missing)")
    lat.add_argument("--contract", default=None, help="contract JSON whose assumed_latency_s is set")
    lat.add_argument("--out", default="latency.json")
    lat.set_defaults(func=_latency)

    sid = sub.add_parser("sysid", help="fit simulator parameters to a deploy recording -> DR preset (+ residual report)")
    sid.add_argument("data", nargs="+", help="rosbag2 bag(s) from tether deploy --record, dataset(s) converted from "
                     "them, or a trajectory log (.npz/.json; format: tether.calibration.sysid)")
    sid.add_argument("--robot", default=None, choices=ROBOT_KINDS,
                     help="robot model from tether.sim (default: the recording's contract; required for a log)")
    sid.add_argument("--contract", default=None, help="checkpoint directory or contract JSON of the deployed policy "
                     "(a bag does not carry its contract; a dataset does)")
    sid.add_argument("--goal", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                     help="quadrotor set point, when the recording does not carry /tether/goal (a dataset)")
    sid.add_argument("--params", default=None, help="comma-separated parameters to fit (default: the robot's set)")
    sid.add_argument("--budget", type=int, default=300,
                     help="parameter sets one global search may replay (a latency fit runs one from each "
                          "whole-step latency)")
    sid.add_argument("--window", type=float, default=None, metavar="S",
                     help="replay window, s (default 0.5 for recordings; logs are replayed whole)")
    sid.add_argument("--max-windows", type=int, default=64, help="windows used at most (spread over the data)")
    sid.add_argument("--max-latency", type=int, default=5, metavar="STEPS", help="largest latency searched")
    sid.add_argument("--dr-width", type=float, default=3.0, metavar="K", help="DR half-width in standard deviations")
    sid.add_argument("--seed", type=int, default=0)
    sid.add_argument("--dr-preset", default=None, help="DR preset JSON to write (centred on the fit)")
    sid.add_argument("--report", default=None, metavar="DIR",
                     help="write the sim-vs-real residual report (PNG figures, markdown table, JSON) here")
    sid.add_argument("--out", default="sysid.json")
    sid.set_defaults(func=_sysid)


def _board_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", default="charuco", choices=["charuco", "checkerboard"])
    p.add_argument("--squares", type=int, nargs=2, default=[7, 5], metavar=("COLS", "ROWS"))
    p.add_argument("--square-size", type=float, default=0.04, help="metres")
    p.add_argument("--marker-size", type=float, default=0.03, help="metres (ChArUco)")
    p.add_argument("--dictionary", default="DICT_5X5_100", help="ArUco dictionary (ChArUco)")


def _camera(args: argparse.Namespace) -> int:
    from tether.calibration.boards import BoardSpec
    from tether.calibration.camera import calibrate_images
    from tether.calibration.io import write_json, write_yaml

    board = BoardSpec(args.board, tuple(args.squares), args.square_size, args.marker_size, args.dictionary)
    calib = calibrate_images(board, args.images, model=args.model, camera_name=args.name)
    out = write_yaml(args.out, calib.to_ros_dict())
    report = write_json(Path(out).with_suffix(".report.json"), calib.report())
    print(calib.summary())
    print(f"wrote {out} and {report}")
    return 0


def _handeye(args: argparse.Namespace) -> int:
    from tether.calibration.handeye import calibrate_hand_eye
    from tether.calibration.io import load_hand_eye_samples, write_json

    robot, target, meta = load_hand_eye_samples(args.samples)
    setup = args.setup or meta.get("setup", "eye_in_hand")
    result = calibrate_hand_eye(
        robot, target, setup, method=args.method,
        parent_frame=args.parent or meta.get("parent_frame"),
        child_frame=args.child or meta.get("child_frame", "camera_optical_frame"),
        bootstrap=args.bootstrap, seed=args.seed, min_rotation_deg=args.min_rotation_deg,
    )
    out = write_json(args.out, {"transform": result.to_transform_dict(), "tf_static": result.to_tf_static(),
                                "report": result.report()})
    print(result.summary())
    print(f"wrote {out}")
    return 0


def _latency(args: argparse.Namespace) -> int:
    from tether.calibration.io import load_arrays, read_json, require, write_json
    from tether.calibration.latency import contract_with_latency, estimate_latency, latency_dr_terms, merge_dr_terms

    arrays = load_arrays(args.data)
    require(arrays, ["t", "command", "response"], f"latency log {args.data!r}",
            optional=("t_response", "t_received", "control_period"))
    # the files this run updates are read and checked before anything is estimated or written
    existing = None
    if args.dr_preset and Path(args.dr_preset).exists():
        from tether.sim.randomization import terms_from_data

        existing = read_json(args.dr_preset, "--dr-preset file")
        terms_from_data(existing, f"--dr-preset file {args.dr_preset!r}")  # the terms the merge below keeps
    contract = None
    if args.contract:
        from tether.validation import contract_from_data

        contract = contract_from_data(read_json(args.contract, "--contract file"),
                                      f"--contract file {args.contract!r}")
    period = args.period
    if period is None and "control_period" in arrays:
        import numpy as np

        if np.asarray(arrays["control_period"]).size != 1:
            raise TetherError(f"latency log {args.data!r}: control_period holds "
                              f"{np.asarray(arrays['control_period']).size} values; expected one number of seconds")
        period = float(np.asarray(arrays["control_period"]).ravel()[0])
    result = estimate_latency(
        arrays["t"], arrays["command"], arrays["response"], t_response=arrays.get("t_response"),
        t_received=arrays.get("t_received"), control_period=period, max_delay_s=args.max_delay,
    )
    written = [write_json(args.out, result.report())]
    if args.dr_preset:
        written.append(write_json(args.dr_preset, merge_dr_terms(existing, latency_dr_terms(result), {"latency": result.report()})))
    if contract is not None:
        Path(args.contract).write_text(contract_with_latency(contract, result).to_json())
        written.append(Path(args.contract))
    print(result.summary())
    print("wrote " + ", ".join(str(w) for w in written))
    return 0


def _writable(path: str, what: str, directory: bool = False) -> Path:
    p = Path(path)
    if directory:
        if p.exists() and not p.is_dir():
            raise TetherError(f"{what} {path!r} is a file; expected a directory (created if missing)")
    elif p.is_dir():
        raise TetherError(f"{what} {path!r} is a directory; expected a file path")
    parent = p if directory and p.exists() else p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise TetherError(f"{what} {path!r}: {str(parent)!r} is not a directory")
    return p


def _sysid_inputs(args: argparse.Namespace) -> tuple[str, object]:
    """(robot, Trajectories) from the DATA arguments, after every number and path is checked."""
    from tether.calibration import recordings, sysid

    if args.budget < 1:
        raise TetherError(f"--budget {args.budget}; expected a positive number of parameter sets")
    if args.window is not None and not (math.isfinite(args.window) and args.window > 0):
        raise TetherError(f"--window {args.window}; expected a positive number of seconds")
    if args.max_windows < 1:
        raise TetherError(f"--max-windows {args.max_windows}; expected at least 1")
    if not 0 <= args.max_latency <= 50:
        raise TetherError(f"--max-latency {args.max_latency}; expected 0..50 control steps")
    if not (math.isfinite(args.dr_width) and args.dr_width > 0):
        raise TetherError(f"--dr-width {args.dr_width}; expected a positive number of standard deviations")
    if args.goal is not None and not all(math.isfinite(g) for g in args.goal):
        raise TetherError(f"--goal {args.goal}; expected three finite numbers")
    _writable(args.out, "--out")
    if args.dr_preset:
        _writable(args.dr_preset, "--dr-preset")
    if args.report:
        _writable(args.report, "--report", directory=True)
    paths = [Path(d) for d in args.data]
    logs = [p for p in paths if p.suffix.lower() in (".npz", ".json") and p.is_file()]
    if logs:
        if len(paths) > 1:
            raise TetherError("a trajectory log (.npz/.json) is identified alone; got "
                              f"{len(paths)} inputs ({', '.join(map(str, paths))})")
        if args.robot is None:
            raise TetherError(f"trajectory log {str(paths[0])!r} does not name its robot; pass --robot")
        return args.robot, sysid.load_trajectories(paths[0])
    robot, data = recordings.load_trajectories(paths, contract=args.contract, goal=args.goal)
    if args.robot is not None and args.robot != robot:
        raise TetherError(f"the recording is of a {robot} (its contract says so); --robot says {args.robot}")
    return robot, data


def _sysid(args: argparse.Namespace) -> int:
    from tether.calibration import sysid
    from tether.calibration.io import write_json

    robot, data = _sysid_inputs(args)
    params = None if args.params is None else [p.strip() for p in args.params.split(",") if p.strip()]
    result = sysid.identify(robot, data, params=params, budget=args.budget, seed=args.seed,
                            window_s="auto" if args.window is None else args.window, max_windows=args.max_windows,
                            max_latency=args.max_latency)
    written = [write_json(args.out, result.report())]
    if args.dr_preset:
        written.append(write_json(args.dr_preset, result.dr_preset(args.dr_width)))
    print(result.summary())
    if args.report:
        from tether.calibration.residuals import residual_report

        rep = residual_report(data, result)
        written += rep.write(args.report)
        print(rep.markdown())
    print("wrote " + ", ".join(str(w) for w in written))
    return 0
