"""``tether security``: SROS2-compatible keystores checked with an independent tool (the openssl command), and
an honest refusal where the installed Cyclone DDS cannot enforce DDS Security.

What is verified here: the files and their layout; the enclave certificate chains to the identity CA and
names the enclave; governance and permissions are S/MIME documents whose signatures verify against the
permissions CA and whose content is the XML written; permissions grant exactly the topics asked for (as DDS
``rt/`` names) and deny the rest; private keys are P-256 and readable by their owner only; bad input is one
line and exit 2. What cannot be verified here: enforcement on the wire - this environment's cyclonedds has no
security support, which ``tether security check`` reports and a deploy asked for ``--keystore`` refuses to run
without (rather than run unauthenticated).
"""

from __future__ import annotations

import stat
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tether.cli import main


def _openssl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def keystore(tmp_path_factory):
    ks = tmp_path_factory.mktemp("sec") / "keystore"
    assert main(["security", "create-keystore", str(ks)]) == 0
    assert main(["security", "create-enclave", str(ks), "/tether/deploy", "--adapter", "px4",
                 "--publish", "/tether/extra"]) == 0
    return ks


def test_keystore_layout_signatures_and_chain(keystore):
    ks = keystore
    enc = ks / "enclaves" / "tether" / "deploy"
    for rel in ("public/ca.cert.pem", "public/identity_ca.cert.pem", "public/permissions_ca.cert.pem",
                "private/ca.key.pem", "enclaves/governance.xml", "enclaves/governance.p7s"):
        assert (ks / rel).is_file() and not (ks / rel).is_symlink(), rel
    for name in ("cert.pem", "key.pem", "identity_ca.cert.pem", "permissions_ca.cert.pem", "governance.p7s",
                 "permissions.xml", "permissions.p7s"):
        assert (enc / name).is_file(), name
    # the identity chains to the identity CA and names the enclave (the grant's subject)
    assert _openssl("verify", "-CAfile", str(ks / "public/identity_ca.cert.pem"), str(enc / "cert.pem")).returncode == 0
    subject = _openssl("x509", "-in", str(enc / "cert.pem"), "-noout", "-subject").stdout.decode()
    assert "CN = /tether/deploy" in subject
    # signed documents verify against the permissions CA and carry exactly the XML written
    for doc, xml in ((ks / "enclaves/governance.p7s", ks / "enclaves/governance.xml"),
                     (enc / "permissions.p7s", enc / "permissions.xml"), (enc / "governance.p7s",
                                                                          ks / "enclaves/governance.xml")):
        r = _openssl("smime", "-verify", "-in", str(doc), "-CAfile", str(ks / "public/permissions_ca.cert.pem"),
                     "-text")
        assert r.returncode == 0, r.stderr
        assert r.stdout.replace(b"\r\n", b"\n").strip() == xml.read_bytes().strip()
    # a tampered document no longer verifies
    forged = enc / "forged.p7s"
    forged.write_bytes((enc / "permissions.p7s").read_bytes().replace(b"DENY", b"ALLOW"))
    assert _openssl("smime", "-verify", "-in", str(forged), "-CAfile",
                    str(ks / "public/permissions_ca.cert.pem"), "-text").returncode != 0
    # keys: P-256, owner-only
    for key in (enc / "key.pem", ks / "private/ca.key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert b"prime256v1" in _openssl("pkey", "-in", str(key), "-noout", "-text").stdout


def test_permissions_grant_exactly_the_topics(keystore):
    root = ET.parse(keystore / "enclaves/tether/deploy/permissions.xml").getroot()
    grant = root.find("permissions/grant")
    assert grant.get("name") == "/tether/deploy" and grant.findtext("subject_name") == "CN=/tether/deploy"
    pub = {t.text for t in grant.findall("allow_rule/publish/topics/topic")}
    sub = {t.text for t in grant.findall("allow_rule/subscribe/topics/topic")}
    assert pub == {"rt/fmu/in/offboard_control_mode", "rt/fmu/in/vehicle_rates_setpoint", "rt/fmu/in/actuator_motors",
                   "rt/fmu/in/vehicle_command", "rt/tether/extra"}
    assert {"rt/fmu/out/vehicle_odometry", "rt/fmu/out/vehicle_status", "rt/tether/estop", "rt/tether/goal"} <= sub
    assert grant.findtext("default") == "DENY"
    gov = ET.parse(keystore / "enclaves/governance.xml").getroot()
    assert gov.findtext("domain_access_rules/domain_rule/allow_unauthenticated_participants") == "false"


def test_bad_input_is_one_line(keystore, tmp_path, capsys):
    cases = [
        (["security", "create-keystore", str(keystore)], "already exists"),
        (["security", "create-keystore", str(tmp_path / "missing" / "ks")], "parent directory"),
        (["security", "create-enclave", str(keystore), "tether deploy"], "expected a ROS enclave path"),
        (["security", "create-enclave", str(tmp_path), "/x"], "lacks public/identity_ca.cert.pem"),
        (["security", "create-enclave", str(keystore), "/bad", "--publish", "no slash"], "topic"),
    ]
    for argv, expect in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tether: error:") and expect in err[0], (argv, err)
    assert not (keystore / "enclaves" / "bad").exists()  # nothing half-made


@pytest.mark.parametrize("rel,content,expect", [
    ("public/identity_ca.cert.pem", b"garbage\n", "identity_ca.cert.pem is not a readable PEM certificate"),
    ("public/permissions_ca.cert.pem", b"", "permissions_ca.cert.pem is not a readable PEM certificate"),
    ("private/identity_ca.key.pem", b"garbage\n", "identity_ca.key.pem is not a readable PEM private key"),
])
def test_a_corrupt_keystore_is_refused_before_any_enclave_file(keystore, tmp_path, capsys, rel, content, expect):
    import shutil

    ks = tmp_path / "ks"
    shutil.copytree(keystore, ks)
    (ks / rel).write_bytes(content)
    assert main(["security", "create-enclave", str(ks), "/robot", "--publish", "/cmd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0] and "expected" in err[0], err
    assert not (ks / "enclaves" / "robot").exists()  # no key or folder left behind


def test_check_matches_what_cyclone_accepts_and_deploy_refuses_without_it(keystore, tmp_path, capsys):
    """``security check`` must agree with the library: here a <Security> configuration is rejected by this
    Cyclone build exactly when the check says enforcement is unavailable; then --keystore refuses to run."""
    from tether.ros.cyclonedds_transport import DdsTransport
    from tether.ros.security import security_support
    from tether.errors import TetherError

    ok, why = security_support()
    from cyclonedds.domain import Domain

    try:
        Domain(230, '<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any"><Security/></Domain></CycloneDDS>')
        accepted = True
    except Exception:
        accepted = False
    assert accepted == ok, why
    assert main(["security", "check"]) == (0 if ok else 1)
    assert ("no DDS Security plugins" in capsys.readouterr().out) == (not ok)
    if not ok:
        with pytest.raises(TetherError, match="refusing to run without the authentication"):
            DdsTransport(domain_id=229, config="loopback", enclave="/tether/deploy", keystore=str(keystore))
        rc = main(["deploy", str(tmp_path / "ckpt"), "--adapter", "px4", "--loopback", "--domain-id", "229",
                   "--keystore", str(keystore), "--enclave", "/tether/deploy", "--duration", "1"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "no DDS Security plugins" in err[0], err
