"""The appliances every vmlog knows without a catalog: CernVM 4 (micro-CernVM) and vmlog-test.

CernVM publishes a plain-text ``latest`` version file and, per version, images in several formats
with a ``.sha256`` file next to each. The base URL can be pointed elsewhere (a mirror, a test
server) with ``$VMLOG_CERNVM_BASE_URL`` or ``settings.cernvm_base_url`` in catalogs.json.
"""

from __future__ import annotations

import re
from pathlib import Path

from vmlog.appliances.catalog_format import VAGRANT_NAME, load_document, parse_vagrant_metadata
from vmlog.appliances.http_get import fetch_small
from vmlog.appliances.model import Appliance, ApplianceVersion, ImageSource
from vmlog.appliances.settings import setting
from vmlog.errors import DownloadError, IntegrityError, InvalidInput, NotFound

CERNVM_BASE_URL = "https://cernvm.cern.ch/releases"
VAGRANT_SERVER_URL = "https://vagrantcloud.com"
FILE_SUFFIXES = (".img", ".qcow2", ".raw", ".hdd", ".vmdk", ".vdi", ".ova", ".ovf", ".box", ".iso", ".json")
CERNVM_BRANCH = "v4prod"
CERNVM_FORMATS = ("hdd", "iso", "vdi", "vmdk", "ova")
CERNVM_MIN_MEMORY_MIB = 2048
CERNVM_SCRATCH_GIB = 20
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# The context templates that come with the CernVM entry, each modelled on one file of CernVM's public contexts
# (github.com/cernvm/public-contexts, what CernVM Online offered): the same CernVM-FS repositories, the same user
# (but for cernvm-default, whose user is yours) and the same login environment. vmlog's differences: the user logs
# in with an SSH key ({ssh_key}), never a password written in the context, and the proxy is DIRECT (no site squid
# on a laptop). docs/contexts.md cites the source of each; `vml context list` offers them.
_COMMON = """\
hostname = "{hostname}"
ssh_public_key = "{ssh_key}"
cvmfs_http_proxy = "DIRECT"
"""

CERNVM_CONTEXT_TEMPLATES: dict[str, str] = {
    "cernvm-default": f"""\
# Modelled on cernvm/public-contexts default.context: the sft and grid repositories.
kind = "cernvm"
description = "CernVM with the SFT (LCG software) and grid repositories"
user = "{{user}}"
{_COMMON}cvmfs_repositories = ["sft.cern.ch", "grid.cern.ch"]
""",
    "cernvm-atlas": f"""\
# Modelled on cernvm/public-contexts atlas.context: ATLAS repositories, ATLAS_LOCAL_ROOT_BASE, setupATLAS.
kind = "cernvm"
description = "CernVM for ATLAS: atlas, atlas-condb, atlas-nightlies, grid and sft; setupATLAS in the shell"
user = "atlas"
{_COMMON}cvmfs_repositories = [
  "atlas.cern.ch", "atlas-condb.cern.ch", "atlas-nightlies.cern.ch", "grid.cern.ch", "sft.cern.ch",
]

[[extra_files]]
path = "/etc/profile.d/atlas.sh"
content = \"\"\"export ATLAS_LOCAL_ROOT_BASE=/cvmfs/atlas.cern.ch/repo/ATLASLocalRootBase
alias setupATLAS='source ${{{{ATLAS_LOCAL_ROOT_BASE}}}}/user/atlasLocalSetup.sh'
\"\"\"
""",
    "cernvm-cms-opendata": f"""\
# Modelled on cernvm/public-contexts cms-opendata.context: the CMS repositories and cmsset_default.sh at login.
kind = "cernvm"
description = "CernVM for CMS open data: cms and cms-opendata-conddb; the CMS environment at login"
user = "cms-opendata"
{_COMMON}cvmfs_repositories = ["cms.cern.ch", "cms-opendata-conddb.cern.ch"]

[[extra_files]]
path = "/etc/profile.d/cms.sh"
permissions = "0755"
content = \"\"\"if [ -r /cvmfs/cms.cern.ch/cmsset_default.sh ]; then
  . /cvmfs/cms.cern.ch/cmsset_default.sh
fi
\"\"\"
""",
    "cernvm-lhcb": f"""\
# Modelled on cernvm/public-contexts lhcb.context: the LHCb repositories and LHCb's login.sh in interactive shells.
kind = "cernvm"
description = "CernVM for LHCb: lhcb, lhcbdev, grid and sft; the LHCb environment in interactive shells"
user = "lhcb"
{_COMMON}cvmfs_repositories = ["lhcb.cern.ch", "lhcbdev.cern.ch", "grid.cern.ch", "sft.cern.ch"]

[[extra_files]]
path = "/etc/profile.d/lhcb.sh"
content = \"\"\"if [ "$PS1" ] && [ -z "$CERNVM_LHCB_ENV" ]; then
  . /cvmfs/lhcb.cern.ch/etc/login.sh || true
  export CERNVM_LHCB_ENV=1
fi
\"\"\"
""",
    "cernvm-alice": f"""\
# Modelled on cernvm/public-contexts alice.context: the ALICE repositories and ALICE's login.sh.
kind = "cernvm"
description = "CernVM for ALICE: alice, alice-ocdb, grid and sft; the ALICE environment in interactive shells"
user = "alice"
{_COMMON}cvmfs_repositories = ["alice.cern.ch", "alice-ocdb.cern.ch", "grid.cern.ch", "sft.cern.ch"]

[[extra_files]]
path = "/etc/profile.d/alice.sh"
content = \"\"\"if [ "$PS1" ] && [ -z "$CERNVM_ALICE_ENV" ]; then
  . /cvmfs/alice.cern.ch/etc/login.sh || true
  export CERNVM_ALICE_ENV=1
fi
\"\"\"
""",
}


def cernvm_base_url(config_dir: Path) -> str:
    return (setting(config_dir, "cernvm_base_url", "VMLOG_CERNVM_BASE_URL") or CERNVM_BASE_URL).rstrip("/")


def cernvm_latest_version(base_url: str, *, insecure: bool = False) -> str:
    """The version named by ``<base>/latest`` (plain text, one line)."""
    text = fetch_small(f"{base_url}/latest", insecure=insecure, limit=256).decode("ascii", "replace").strip()
    version = text.splitlines()[0].strip() if text else ""
    if not _VERSION.match(version):
        raise DownloadError(
            f"{base_url}/latest does not name a CernVM version: {text[:60]!r}",
            fix="name the version explicitly (e.g. `vml appliance pull cernvm --version 2024.04-1`)",
        )
    return version


def cernvm_image_url(base_url: str, version: str, fmt: str, *, arch: str = "x86_64") -> str:
    release = f"ucernvm-images.{version}.cernvm.{arch}"
    return f"{base_url}/{release}/ucernvm-{CERNVM_BRANCH}.{version}.cernvm.{arch}.{fmt}"


def cernvm_version(base_url: str, version: str, *, arch: str = "x86_64") -> ApplianceVersion:
    images = {}
    for fmt in CERNVM_FORMATS:
        url = cernvm_image_url(base_url, version, fmt, arch=arch)
        images[fmt] = ImageSource(format=fmt, urls=(url,), arch=arch, digest_url=url + ".sha256")
    return ApplianceVersion(
        version=version,
        images=images,
        min_memory_mib=CERNVM_MIN_MEMORY_MIB,
        scratch_disk_gib=CERNVM_SCRATCH_GIB,
        context="cernvm",
        boot={
            "firmware": "bios",
            "scratch_disk": "empty, >= 20 GB, formatted by CernVM at first boot",
            "context_templates": list(CERNVM_CONTEXT_TEMPLATES),
        },
    )


def published_sha256(digest_url: str, *, insecure: bool = False) -> str:
    """Read a ``.sha256`` file (the hex digest, optionally followed by a file name) and check it."""
    text = fetch_small(digest_url, insecure=insecure, limit=1024).decode("ascii", "replace").strip()
    value = text.split()[0].lower() if text else ""
    if not _SHA256.match(value):
        raise IntegrityError(
            f"{digest_url} does not hold a sha256 digest: {text[:80]!r}", fix="check the mirror or base URL"
        )
    return value


def cernvm_appliance(config_dir: Path, *, insecure: bool = False) -> Appliance:
    base = cernvm_base_url(config_dir)

    def resolve(version: str | None) -> ApplianceVersion:
        if version in (None, "latest"):
            version = cernvm_latest_version(base, insecure=insecure)
        if not _VERSION.match(version):
            raise DownloadError(f"invalid CernVM version {version!r}")
        return cernvm_version(base, version)

    return Appliance(
        name="cernvm",
        title="CernVM 4 (micro-CernVM)",
        description="CERN's virtual appliance for LHC analysis: a tiny boot image that loads the OS from CernVM-FS.",
        versions=(),
        catalog="built-in",
        resolver=resolve,
    )


def vmlog_test_appliance() -> Appliance:
    """vmlog-test: a tiny appliance built on this machine from Debian packages (no download)."""
    from vmlog.testappliance.build import APPLIANCE_NAME, APPLIANCE_VERSION, MIN_MEMORY_MIB

    version = ApplianceVersion(
        version=APPLIANCE_VERSION,
        images={"raw": ImageSource(format="raw", urls=())},
        min_memory_mib=MIN_MEMORY_MIB,
        context="nocloud",
        boot={"firmware": "bios", "console": "serial"},
    )
    return Appliance(
        name=APPLIANCE_NAME,
        title="vmlog test appliance",
        description="A busybox system that boots in seconds under TCG; reads a NoCloud seed. Built locally.",
        versions=(version,),
        catalog="built-in",
        local_builder=True,
    )


def vmlog_debian_appliance() -> Appliance:
    """vmlog-debian: a real Debian 12 guest built on this machine from Debian packages (root + mmdebstrap)."""
    from vmlog.testappliance.debian import APPLIANCE_NAME, APPLIANCE_VERSION, MIN_MEMORY_MIB

    version = ApplianceVersion(
        version=APPLIANCE_VERSION,
        images={"raw": ImageSource(format="raw", urls=())},
        min_memory_mib=MIN_MEMORY_MIB,
        context="nocloud",
        boot={"firmware": "bios", "console": "serial", "agent": "qemu-ga", "ssh": True},
    )
    return Appliance(
        name=APPLIANCE_NAME,
        title="Debian 12 (vmlog-debian)",
        description="A real Debian 12 guest: systemd, cloud-init (NoCloud), qemu-guest-agent, sshd. Built locally.",
        versions=(version,),
        catalog="built-in",
        local_builder=True,
    )


def vagrant_server_url(config_dir: Path) -> str:
    return (setting(config_dir, "vagrant_server_url", "VAGRANT_SERVER_URL") or VAGRANT_SERVER_URL).rstrip("/")


def vagrant_server_appliance(config_dir: Path, name: str, *, insecure: bool = False) -> Appliance | None:
    """Box ``org/name`` from the Vagrant server's metadata at ``<server>/org/name``; None if ``name`` is not
    of that form. ``NotFound`` (with what the server said) when the server does not know it."""
    if "/" not in name or not VAGRANT_NAME.match(name) or name.lower().endswith(FILE_SUFFIXES):
        return None  # not a box name (an image file that does not exist is not asked of a server)
    base = vagrant_server_url(config_dir)
    try:
        doc = load_document(f"{base}/{name}", insecure=insecure)
        (appliance,) = parse_vagrant_metadata(doc, source=base)
    except (DownloadError, InvalidInput, NotFound) as exc:
        raise NotFound(
            f"no catalog lists {name!r} and {base} does not offer it: {exc.message}",
            fix="check the name, or add the box's metadata with `vml catalog add URL`",
        ) from exc
    if appliance.name != name:
        raise NotFound(f"{base} answered for {appliance.name!r} when asked for {name!r}")
    return appliance


def builtin_appliances(config_dir: Path, *, insecure: bool = False) -> list[Appliance]:
    return [cernvm_appliance(config_dir, insecure=insecure), vmlog_test_appliance(), vmlog_debian_appliance()]


def builtin_appliance_for(image_name: str, config_dir: Path) -> Appliance | None:
    """The built-in appliance whose image the store keeps as ``image_name`` (with a version), None for any other."""
    for known in builtin_appliances(config_dir):
        if known.store_name == image_name and known.versions:
            return known
    return None
