"""``tether security``: SROS2-compatible keystores (see :mod:`tether.ros.security`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tether.ros.protocols import ADAPTERS

ADAPTER_NAMES = tuple(ADAPTERS)


def register(subparsers: Any) -> None:
    sec = subparsers.add_parser("security", help="DDS Security keystores (SROS2 layout): CA, enclaves, permissions")
    ssub = sec.add_subparsers(dest="security_command", metavar="ACTION", required=True)
    p = ssub.add_parser("create-keystore", help="a new keystore: CA and signed governance")
    p.add_argument("keystore", help="directory to create")
    p.set_defaults(func=_create_keystore)
    p = ssub.add_parser("create-enclave", help="an enclave's key, certificate and signed permissions")
    p.add_argument("keystore", help="an existing keystore")
    p.add_argument("enclave", help="ROS enclave path, e.g. /tether/deploy")
    p.add_argument("--publish", action="append", default=[], metavar="TOPIC", help="ROS topic it may publish")
    p.add_argument("--subscribe", action="append", default=[], metavar="TOPIC", help="ROS topic it may read")
    p.add_argument("--adapter", default=None, choices=ADAPTER_NAMES,
                   help="add every topic `tether deploy --adapter ADAPTER` publishes and reads")
    p.set_defaults(func=_create_enclave)
    p = ssub.add_parser("check", help="can this Cyclone DDS build enforce DDS Security?")
    p.set_defaults(func=_check)


def deploy_topics(adapter: str) -> tuple[list[str], list[str]]:
    """(published, read) ROS topics of a deploy through ``adapter`` with its default options."""
    from tether.data.topics import ESTOP_TOPIC
    from tether.ros.loopback import LoopbackTransport
    from tether.ros.protocols import ADAPTERS, make_adapter
    from tether.ros.protocols.common import ROBOT_INFO_TOPIC

    t = LoopbackTransport(domain_id=-1)
    try:
        a = make_adapter(adapter, t, **ADAPTERS[adapter].deploy_params)
        pubs = a.command_topics()
        subs = [topic for topic, _ in a.recorded_topics() if topic not in pubs] + [ESTOP_TOPIC, ROBOT_INFO_TOPIC]
    finally:
        t.close()
    return pubs, subs


def _create_keystore(args: Any) -> int:
    from tether.ros.security import create_keystore

    ks = create_keystore(args.keystore)
    print(f"tether security: keystore {ks} (CA, signed governance); next: tether security create-enclave {ks} "
          "/tether/deploy --adapter ...", flush=True)
    return 0


def _create_enclave(args: Any) -> int:
    from tether.ros.security import check_enclave, create_enclave

    check_enclave(args.enclave)
    pubs, subs = list(args.publish), list(args.subscribe)
    if args.adapter:
        more_pubs, more_subs = deploy_topics(args.adapter)
        pubs, subs = pubs + more_pubs, subs + more_subs
    out = create_enclave(Path(args.keystore), args.enclave, pubs, subs)
    print(f"tether security: enclave {args.enclave} in {out} may publish {sorted(set(pubs))} and read "
          f"{sorted(set(subs))}", flush=True)
    return 0


def _check(args: Any) -> int:
    from tether.ros.security import security_support

    ok, why = security_support()
    print(f"tether security: {why}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    from tether.cli import main

    sys.exit(main(["security", *sys.argv[1:]]))
