"""The vmlog-debian recipe without building it: what goes into the image, and the cache key that covers it."""

from __future__ import annotations

import json

import pytest

from vmlog.testappliance import debian, debian_files

yaml = pytest.importorskip("yaml")


def test_cloud_config_of_the_image_is_what_cloud_init_reads() -> None:
    config = yaml.safe_load(debian_files.CLOUD_CFG)
    assert config["datasource_list"] == ["NoCloud", "None"]
    assert config["network"] == {"config": "disabled"}
    # what vmlog's seeds use must still run: users and keys, write_files, mounts, hostname, runcmd
    assert {"users-groups", "ssh", "write-files", "mounts", "set_hostname"} <= set(config["cloud_init_modules"])
    assert "runcmd" in config["cloud_config_modules"] and "scripts-user" in config["cloud_final_modules"]


def test_the_recipe_digest_covers_every_file_and_package(monkeypatch: pytest.MonkeyPatch) -> None:
    before = debian.recipe_digest()
    assert before == debian.recipe_digest()
    monkeypatch.setitem(debian_files.FILES, "etc/hostname", "other\n")
    assert debian.recipe_digest() != before
    monkeypatch.undo()
    monkeypatch.setattr(debian, "PACKAGES", (*debian.PACKAGES, "vim"))
    assert debian.recipe_digest() != before


def test_the_image_boots_its_root_by_label_with_the_agent_and_sshd() -> None:
    assert f"root=LABEL={debian.ROOT_LABEL}" in debian.KERNEL_CMDLINE
    assert debian_files.FILES["etc/fstab"].startswith(f"LABEL={debian.ROOT_LABEL} / ext4")
    assert {"qemu-guest-agent", "openssh-server", "cloud-init", "linux-image-cloud-amd64"} <= set(debian.PACKAGES)
    assert "systemd-networkd-wait-online.service" in debian.MASKED_UNITS


def test_a_cached_image_is_reused_without_building(tmp_path) -> None:
    image = tmp_path / debian.IMAGE_NAME
    image.write_bytes(b"disk")
    image.with_suffix(".json").write_text(json.dumps({"inputs_digest": debian.recipe_digest()}))
    assert debian.build_debian_appliance(tmp_path) == image  # no mmdebstrap, no root needed
