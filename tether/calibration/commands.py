"""``tether calibrate camera | handeye | sysid | latency``: each prints a short report and writes its result.

Heavy imports (OpenCV, MuJoCo, scipy) happen inside the handlers so ``tether --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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

    sid = sub.add_parser("sysid", help="fit simulator parameters to recorded trajectories -> DR preset")
    sid.add_argument("data", help="trajectory log (.npz/.json): t, command, state (format: tether.calibration.sysid)")
    sid.add_argument("--robot", required=True, help="robot model from tether.sim (quadrotor, arm, legged)")
    sid.add_argument("--params", default=None, help="comma-separated parameters to fit (default: the robot's set)")
    sid.add_argument("--budget", type=int, default=300, help="simulations the optimiser may spend")
    sid.add_argument("--seed", type=int, default=0)
    sid.add_argument("--dr-preset", default=None, help="DR preset JSON to write (centred on the fit)")
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
    require(arrays, ["t", "command", "response"], f"latency log {args.data!r}")
    period = args.period
    if period is None and "control_period" in arrays:
        period = float(arrays["control_period"])
    result = estimate_latency(
        arrays["t"], arrays["command"], arrays["response"], t_response=arrays.get("t_response"),
        t_received=arrays.get("t_received"), control_period=period, max_delay_s=args.max_delay,
    )
    written = [write_json(args.out, result.report())]
    if args.dr_preset:
        existing = read_json(args.dr_preset) if Path(args.dr_preset).is_file() else None
        written.append(write_json(args.dr_preset, merge_dr_terms(existing, latency_dr_terms(result), {"latency": result.report()})))
    if args.contract:
        from tether.contract import IOContract

        contract = IOContract.from_json(Path(args.contract).read_text())
        Path(args.contract).write_text(contract_with_latency(contract, result).to_json())
        written.append(Path(args.contract))
    print(result.summary())
    print("wrote " + ", ".join(str(w) for w in written))
    return 0


def _sysid(args: argparse.Namespace) -> int:
    from tether.calibration import sysid
    from tether.calibration.io import write_json

    log = sysid.load_trajectories(args.data)
    params = None if args.params is None else [p.strip() for p in args.params.split(",") if p.strip()]
    result = sysid.identify(args.robot, log, params=params, budget=args.budget, seed=args.seed)
    written = [write_json(args.out, result.report())]
    if args.dr_preset:
        written.append(write_json(args.dr_preset, result.dr_preset()))
    print(result.summary())
    print("wrote " + ", ".join(str(w) for w in written))
    return 0
