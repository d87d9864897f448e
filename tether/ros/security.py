"""DDS Security keystores in the SROS2 layout: a CA, signed governance, and per-enclave identities and permissions.

What DDS Security gives (OMG DDS Security 1.1, the plugins ROS 2's ``SROS2`` configures): participants
authenticate with certificates from an identity CA, every topic a participant may publish or subscribe is
listed in a permissions document signed by a permissions CA, and the domain's governance (signed too) says
what must be authenticated, signed and encrypted. An intruder without a certificate then cannot join the
domain at all, and a participant cannot write a topic its permissions do not grant - which closes what
command-topic hygiene (:mod:`tether.ros.hygiene`) can only detect.

The keystore layout is SROS2's (``ros2 security create_keystore`` / ``create_enclave``), so the same keystore
serves ROS 2 nodes (``ROS_SECURITY_KEYSTORE``, ``ROS_SECURITY_ENCLAVE_OVERRIDE``) and Tether::

    <keystore>/public/{ca,identity_ca,permissions_ca}.cert.pem      (one CA; copies, not symlinks)
    <keystore>/private/{ca,identity_ca,permissions_ca}.key.pem     (mode 0600)
    <keystore>/enclaves/governance.{xml,p7s}
    <keystore>/enclaves/<enclave>/{cert,key}.pem, identity_ca.cert.pem, permissions_ca.cert.pem,
                                  governance.p7s, permissions.{xml,p7s}

Keys are ECDSA P-256, certificates SHA-256, documents S/MIME signed (``openssl smime -sign -text``, what SROS2
produces); everything is made by the ``openssl`` command (OpenSSL >= 1.1.1), run without a shell.

Enforcement needs a Cyclone DDS built with security (``-DENABLE_SECURITY=ON``, as ROS 2 ships it): the PyPI
``cyclonedds`` wheel (11.0.1 checked) has neither the ``<Security>`` configuration element nor the
``libdds_security_{auth,ac,crypto}`` plugins, so :func:`security_support` says so and a transport asked to use
a keystore refuses to start rather than run unauthenticated. The Cyclone configuration it would use is
:func:`cyclone_security_xml` (written against Cyclone's documented configuration; untested here for that
reason).
"""

from __future__ import annotations

import ctypes.util
import datetime as dt
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from xml.sax.saxutils import escape

from tether.errors import TetherError

ENCLAVE_RE = re.compile(r"^(/[A-Za-z0-9_]+)+$")
PLUGINS = ("dds_security_auth", "dds_security_ac", "dds_security_crypto")
MIN_OPENSSL = (1, 1, 1)
VALID_DAYS = 3650
DOMAINS = (0, 232)


def check_enclave(name: str) -> str:
    if not isinstance(name, str) or len(name) > 200 or not ENCLAVE_RE.match(name):
        raise TetherError(f"enclave {name!r}; expected a ROS enclave path like /tether/deploy")
    return name


def _openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        raise TetherError("the openssl command is not installed; expected OpenSSL >= 1.1.1 on PATH")
    out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"OpenSSL (\d+)\.(\d+)\.(\d+)", out)
    if not m or tuple(int(g) for g in m.groups()) < MIN_OPENSSL:
        raise TetherError(f"openssl reports {out.strip()!r}; expected OpenSSL >= 1.1.1")
    return exe


def _run(*args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run([_openssl(), *args], input=stdin, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise TetherError(f"openssl {args[0]} failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key() -> bytes:
    return _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")


def _sign_smime(doc: Path, out: Path, cert: Path, key: Path) -> None:
    out.write_bytes(_run("smime", "-sign", "-text", "-in", str(doc), "-signer", str(cert), "-inkey", str(key)))


def _check_new_dir(path: Path, what: str) -> None:
    if path.exists():
        raise TetherError(f"{what} {str(path)!r} already exists; expected a new directory")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise TetherError(f"{what} {str(path)!r}: the parent directory is missing or not writable")


def governance_xml(domains: tuple[int, int] = DOMAINS) -> str:
    """Governance: authenticated participants only, discovery and liveliness encrypted, every topic access
    controlled and encrypted (SROS2's default governance)."""
    lo, hi = domains
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_governance.xsd">
  <domain_access_rules>
    <domain_rule>
      <domains><id_range><min>{lo}</min><max>{hi}</max></id_range></domains>
      <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
      <enable_join_access_control>true</enable_join_access_control>
      <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
      <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
      <rtps_protection_kind>SIGN</rtps_protection_kind>
      <topic_access_rules>
        <topic_rule>
          <topic_expression>*</topic_expression>
          <enable_discovery_protection>true</enable_discovery_protection>
          <enable_liveliness_protection>true</enable_liveliness_protection>
          <enable_read_access_control>true</enable_read_access_control>
          <enable_write_access_control>true</enable_write_access_control>
          <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
          <data_protection_kind>ENCRYPT</data_protection_kind>
        </topic_rule>
      </topic_access_rules>
    </domain_rule>
  </domain_access_rules>
</dds>
"""


def permissions_xml(enclave: str, publish: Iterable[str], subscribe: Iterable[str],
                    domains: tuple[int, int] = DOMAINS, days: int = VALID_DAYS) -> str:
    """One grant for ``enclave``: exactly these ROS topics (as DDS ``rt/...`` names), everything else denied."""
    from tether.ros.types import check_topic, dds_topic

    def topics(names: Iterable[str]) -> str:
        out = []
        for n in sorted(set(names)):
            check_topic(n)
            out.append(f"            <topic>{escape(dds_topic(n))}</topic>")
        return "\n".join(out)

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    lo, hi = domains
    fmt = "%Y-%m-%dT%H:%M:%S"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_permissions.xsd">
  <permissions>
    <grant name="{escape(enclave)}">
      <subject_name>CN={escape(enclave)}</subject_name>
      <validity>
        <not_before>{now.strftime(fmt)}</not_before>
        <not_after>{(now + dt.timedelta(days=days)).strftime(fmt)}</not_after>
      </validity>
      <allow_rule>
        <domains><id_range><min>{lo}</min><max>{hi}</max></id_range></domains>
        <publish>
          <topics>
{topics(publish) or '            <topic>rt/tether/none</topic>'}
          </topics>
        </publish>
        <subscribe>
          <topics>
{topics(subscribe) or '            <topic>rt/tether/none</topic>'}
          </topics>
        </subscribe>
      </allow_rule>
      <default>DENY</default>
    </grant>
  </permissions>
</dds>
"""


def create_keystore(keystore: str | Path, name: str = "tether keystore CA") -> Path:
    """A new keystore: one CA (identity and permissions), signed governance."""
    ks = Path(keystore)
    _check_new_dir(ks, "keystore")
    _openssl()
    for sub in ("public", "private", "enclaves"):
        (ks / sub).mkdir(parents=True)
    os.chmod(ks / "private", 0o700)
    key_pem = _key()
    ca_key = ks / "private" / "ca.key.pem"
    _write_private(ca_key, key_pem)
    ca_cert = ks / "public" / "ca.cert.pem"
    ca_cert.write_bytes(_run("req", "-x509", "-new", "-key", str(ca_key), "-subj", f"/CN={name}", "-days",
                             str(VALID_DAYS), "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
                             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"))
    for role in ("identity_ca", "permissions_ca"):
        shutil.copyfile(ca_cert, ks / "public" / f"{role}.cert.pem")
        _write_private(ks / "private" / f"{role}.key.pem", key_pem)
    gov = ks / "enclaves" / "governance.xml"
    gov.write_text(governance_xml())
    _sign_smime(gov, ks / "enclaves" / "governance.p7s", ca_cert, ca_key)
    return ks


def _check_keystore(ks: Path) -> None:
    for rel in ("public/identity_ca.cert.pem", "public/permissions_ca.cert.pem", "private/identity_ca.key.pem",
                "private/permissions_ca.key.pem", "enclaves/governance.p7s"):
        p = ks / rel
        if p.is_symlink() or not p.is_file():
            raise TetherError(f"keystore {str(ks)!r} lacks {rel} (or it is not a regular file); expected a "
                              "keystore made by `tether security create-keystore`")
    for rel, check in (("public/identity_ca.cert.pem", ("x509", "-noout", "-in")),
                       ("public/permissions_ca.cert.pem", ("x509", "-noout", "-in")),
                       ("private/identity_ca.key.pem", ("pkey", "-noout", "-in")),
                       ("private/permissions_ca.key.pem", ("pkey", "-noout", "-in"))):
        try:
            _run(*check, str(ks / rel))
        except TetherError:
            raise TetherError(f"keystore {str(ks)!r}: {rel} is not a readable PEM "
                              f"{'certificate' if check[0] == 'x509' else 'private key'}; expected a keystore made "
                              "by `tether security create-keystore`") from None


def create_enclave(keystore: str | Path, enclave: str, publish: Iterable[str], subscribe: Iterable[str]) -> Path:
    """An enclave's identity (key + certificate with CN=<enclave>) and its signed permissions."""
    ks = Path(keystore)
    check_enclave(enclave)
    _check_keystore(ks)
    out = ks / "enclaves" / enclave.strip("/")
    if out.exists():
        raise TetherError(f"enclave {enclave!r} already exists in {str(ks)!r}; expected a new enclave")
    xml = permissions_xml(enclave, list(publish), list(subscribe))  # validates the topics before any file
    out.mkdir(parents=True)
    key = out / "key.pem"
    _write_private(key, _key())
    csr = _run("req", "-new", "-key", str(key), "-subj", "/CN=" + enclave.replace("/", "\\/"))
    id_cert, id_key = ks / "public" / "identity_ca.cert.pem", ks / "private" / "identity_ca.key.pem"
    (out / "cert.pem").write_bytes(_run("x509", "-req", "-CA", str(id_cert), "-CAkey", str(id_key),
                                        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days",
                                        str(VALID_DAYS), "-sha256", stdin=csr))
    shutil.copyfile(id_cert, out / "identity_ca.cert.pem")
    shutil.copyfile(ks / "public" / "permissions_ca.cert.pem", out / "permissions_ca.cert.pem")
    shutil.copyfile(ks / "enclaves" / "governance.p7s", out / "governance.p7s")
    (out / "permissions.xml").write_text(xml)
    _sign_smime(out / "permissions.xml", out / "permissions.p7s", ks / "public" / "permissions_ca.cert.pem",
                ks / "private" / "permissions_ca.key.pem")
    return out


def _plugin_dirs() -> list[Path]:
    import cyclonedds

    base = Path(cyclonedds.__file__).resolve().parent
    return [base / ".libs", base.parent / "cyclonedds.libs", base]


def security_support() -> tuple[bool, str]:
    """Whether this cyclonedds build can enforce DDS Security, and why not."""
    found = {}
    for plugin in PLUGINS:
        hit = ctypes.util.find_library(plugin)
        for d in _plugin_dirs():
            hit = hit or next((str(p) for p in d.glob(f"lib{plugin}*.so*")), None)
        found[plugin] = hit
    missing = [p for p, hit in found.items() if not hit]
    if missing:
        return False, (f"this cyclonedds build has no DDS Security plugins (lib{', lib'.join(missing)} not found; the "
                       "PyPI wheel ships libddsc without them and without the <Security> configuration element); "
                       "enforcement needs a Cyclone DDS built with -DENABLE_SECURITY=ON, as ROS 2 ships it")
    return True, "DDS Security plugins found: " + ", ".join(f"{k}={v}" for k, v in found.items())


def enclave_files(keystore: str | Path, enclave: str) -> dict[str, Path]:
    ks = Path(keystore)
    check_enclave(enclave)
    d = ks / "enclaves" / enclave.strip("/")
    files = {"identity_ca": d / "identity_ca.cert.pem", "cert": d / "cert.pem", "key": d / "key.pem",
             "permissions_ca": d / "permissions_ca.cert.pem", "governance": d / "governance.p7s",
             "permissions": d / "permissions.p7s"}
    for name, p in files.items():
        if p.is_symlink() or not p.is_file():
            raise TetherError(f"enclave {enclave!r} in {str(ks)!r} lacks {p.name}; expected `tether security "
                              "create-enclave` to have made it")
    return files


def cyclone_security_xml(keystore: str | Path, enclave: str) -> str:
    """The ``<Security>`` block of a Cyclone configuration for ``enclave`` (needs a security-enabled build)."""
    f = {k: "file:" + str(v.resolve()) for k, v in enclave_files(keystore, enclave).items()}
    return (
        "<Security><Authentication>"
        '<Library path="dds_security_auth" initFunction="init_authentication" '
        'finalizeFunction="finalize_authentication"/>'
        f"<IdentityCA>{escape(f['identity_ca'])}</IdentityCA>"
        f"<IdentityCertificate>{escape(f['cert'])}</IdentityCertificate>"
        f"<PrivateKey>{escape(f['key'])}</PrivateKey></Authentication>"
        "<AccessControl>"
        '<Library path="dds_security_ac" initFunction="init_access_control" '
        'finalizeFunction="finalize_access_control"/>'
        f"<PermissionsCA>{escape(f['permissions_ca'])}</PermissionsCA>"
        f"<Governance>{escape(f['governance'])}</Governance>"
        f"<Permissions>{escape(f['permissions'])}</Permissions></AccessControl>"
        "<Cryptographic>"
        '<Library path="dds_security_crypto" initFunction="init_crypto" finalizeFunction="finalize_crypto"/>'
        "</Cryptographic></Security>"
    )


def require_security(keystore: str | Path, enclave: str) -> str:
    """The Security configuration for ``enclave``, or a clear refusal where this build cannot enforce it."""
    xml = cyclone_security_xml(keystore, enclave)  # checks the files first: a bad keystore is named as such
    ok, why = security_support()
    if not ok:
        raise TetherError(f"--keystore given but {why}; refusing to run without the authentication asked for")
    return xml
