"""``tether wm fit DATASET`` and ``tether wm eval MODEL DATASET``: world models from the command line.

Heavy imports (torch, the dataset reader) happen inside the handlers so ``tether --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json

from tether.cli_types import existing_dir, int_range, output_dir, positive_int, seed, widths
from tether.policies.cli_options import add_threads_option


def register(subparsers: argparse._SubParsersAction) -> None:
    wm = subparsers.add_parser("wm", help="world models: fit an ensemble dynamics model to a dataset, evaluate it")
    sub = wm.add_subparsers(dest="wm_command", metavar="WM_COMMAND", required=True)
    f = sub.add_parser("fit", help="fit a probabilistic ensemble (PETS/MBPO style) to a dataset's transitions")
    f.add_argument("dataset", type=existing_dir, help="dataset directory (LeRobot v3 layout, meta/info.json)")
    f.add_argument("--out", type=output_dir, default=None, help="output directory (default DATASET-wm)")
    f.add_argument("--members", type=int_range(1, 64), default=7, help="ensemble members (1..64)")
    f.add_argument("--elites", type=int_range(1, 64), default=5, help="elite members used to predict (<= members)")
    f.add_argument("--hidden", type=widths, default=(200, 200, 200),
                   help="hidden widths, comma separated (each 1..65536, at most 64 layers)")
    f.add_argument("--updates", type=positive_int, default=5000, help="maximum gradient updates")
    f.add_argument("--seed", type=seed, default=0)
    add_threads_option(f)
    f.set_defaults(func=_fit)
    e = sub.add_parser("eval", help="one-step and open-loop errors of a world model on a dataset, vs baselines")
    e.add_argument("model", type=existing_dir, help="world model directory written by `tether wm fit`")
    e.add_argument("dataset", type=existing_dir)
    e.add_argument("--horizon", type=int_range(1, 10_000), default=10, help="open-loop steps")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=_eval)


def _fit(args: argparse.Namespace) -> int:
    from tether.errors import TetherError

    if args.elites > args.members:
        raise TetherError(f"--elites {args.elites} > --members {args.members}; expected elites <= members")
    if not (args.dataset / "meta" / "info.json").is_file():
        raise TetherError(f"{args.dataset} is not a dataset; expected a directory with meta/info.json")
    import torch

    from tether.data.dataset import Dataset
    from tether.world_models.ensemble import EnsembleConfig, EnsembleWorldModel

    torch.set_num_threads(args.threads)
    ds = Dataset(args.dataset)
    tr = ds.to_transitions()
    if len(tr["obs"]) == 0:
        raise TetherError(f"dataset {args.dataset} has no complete transitions to fit")
    cfg = EnsembleConfig(members=args.members, elites=args.elites, hidden=tuple(args.hidden),
                         max_updates=args.updates, seed=args.seed)
    model = EnsembleWorldModel(tr["obs"].shape[1], tr["action"].shape[1], cfg)
    metrics = model.fit(tr)
    out = args.out or args.dataset.with_name(args.dataset.name + "-wm")
    contract = ds.contract.to_dict() if ds.contract is not None else None
    model.save(out, extra={"dataset": str(args.dataset), "transitions": int(len(tr["obs"])), "contract": contract,
                           **metrics})
    print(f"fitted on {len(tr['obs'])} transitions: held-out MSE {metrics['wm/holdout_mse']:.4g} "
          f"(normalised), {int(metrics['wm/updates'])} updates")
    print(f"saved {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tether.contract import IOContract
    from tether.data.dataset import Dataset
    from tether.errors import TetherError
    from tether.world_models.ensemble import EnsembleWorldModel
    from tether.world_models.metrics import open_loop_errors

    model = EnsembleWorldModel.load(args.model)
    if not (args.dataset / "meta" / "info.json").is_file():
        raise TetherError(f"{args.dataset} is not a dataset; expected a directory with meta/info.json")
    ds = Dataset(args.dataset)
    tr = ds.to_transitions()
    if tr["obs"].shape[1] != model.obs_size or tr["action"].shape[1] != model.action_size:
        raise TetherError(f"dataset has obs {tr['obs'].shape[1]} / action {tr['action'].shape[1]}; the model expects "
                          f"{model.obs_size} / {model.action_size}")
    contract = ds.contract if isinstance(ds.contract, IOContract) else None
    res = open_loop_errors(model, tr, args.horizon, contract=contract)
    unc = model.predict(tr["obs"][:2048], tr["action"][:2048])["disagreement"]
    res["disagreement_median"] = float(sorted(unc)[len(unc) // 2])
    if args.json:
        print(json.dumps(res))
    else:
        base = "constant velocity" if contract is not None else "no change"
        print(f"1-step MAE {res['mae_1']:.4g} (baseline {base}: {res['baseline_mae_1']:.4g}); "
              f"{args.horizon}-step open-loop MAE {res[f'mae_{args.horizon}']:.4g} "
              f"(baseline {res[f'baseline_mae_{args.horizon}']:.4g}); median disagreement "
              f"{res['disagreement_median']:.3g}")
    return 0
