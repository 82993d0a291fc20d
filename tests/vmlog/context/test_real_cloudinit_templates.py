"""Seeds made from context templates, read back by the installed cloud-init (datasources, user-data processor, schema).

Every built-in template (CernVM's public contexts) as the CernVM config drive and as NoCloud, and a
user's template with files, runcmd and literal braces, through the same probe as the other seeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_real_cloudinit import KEY, _clean, _probe, pytestmark  # noqa: F401 - the same skip without cloud-init

from vmlog.appliances.builtin import CERNVM_CONTEXT_TEMPLATES
from vmlog.context.templates import ContextTemplate, skeleton

VALUES = {"project": "higgs_2026", "hostname": "higgs-2026", "user": "alice", "ssh_key": KEY}


@pytest.mark.parametrize("name", list(CERNVM_CONTEXT_TEMPLATES))
@pytest.mark.parametrize("kind", ["cernvm", "nocloud"])
def test_builtin_template_seeds_pass_cloudinit(name: str, kind: str, tmp_path: Path) -> None:
    template = ContextTemplate(name, CERNVM_CONTEXT_TEMPLATES[name], builtin=True)
    ctx = template.fill(VALUES)
    report = _probe(kind, ctx, tmp_path)
    config = _clean(report)
    assert config["hostname"] == "higgs-2026"
    (user,) = [u for u in config["users"] if isinstance(u, dict)]
    assert user["name"] == ctx.user and user["ssh_authorized_keys"] == [KEY]
    repos = ",".join(ctx.cvmfs_repositories)
    if kind == "cernvm":
        amiconfig = next(p["payload"] for p in report["parts"] if p["type"] == "text/amiconfig-user-data")
        assert f"repositories={repos}\nproxy=DIRECT\n" in amiconfig
    else:
        (local,) = [f for f in config["write_files"] if f["path"] == "/etc/cvmfs/default.local"]
        assert f"CVMFS_REPOSITORIES={repos}\n" in local["content"]
    for extra in ctx.extra_files:
        assert {"path": extra.path, "content": extra.content, "permissions": extra.permissions} in config.get(
            "write_files", []
        )


def test_a_users_template_seed_passes_cloudinit(tmp_path: Path) -> None:
    text = skeleton("nocloud", "mine") + (
        '[[extra_files]]\npath = "/etc/motd"\ncontent = "project {project}, literal {{x}} and ${{HOME}}\\n"\n'
        '[extra_user_data]\nruncmd = ["echo {project} > /var/tmp/project"]\n'
    )
    ctx = ContextTemplate("mine", text).fill(VALUES)
    config = _clean(_probe("nocloud", ctx, tmp_path))
    assert config["write_files"][0]["content"] == "project higgs_2026, literal {x} and ${HOME}\n"
    assert config["runcmd"] == ["echo higgs_2026 > /var/tmp/project"]
    (user,) = [u for u in config["users"] if isinstance(u, dict)]
    assert user["name"] == "alice"
