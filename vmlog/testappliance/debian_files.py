"""The files ``vmlog-debian`` carries beyond its packages: what makes it boot fast under TCG and obey the seed.

Kept as text here (not files beside the module) so the recipe digest covers them and packaging
needs nothing extra. Each one says why it is there.
"""

from __future__ import annotations

CLOUD_CFG = """\
# vmlog-debian: only the seed kinds vmlog writes, and only the modules its contexts use.
datasource_list: [NoCloud, None]
network: {config: disabled}   # systemd-networkd does DHCP on every NIC (20-dhcp.network)
ssh_genkeytypes: [ed25519]    # one host key: RSA generation alone takes seconds under TCG
ssh_deletekeys: true
cloud_init_modules:
 - seed_random
 - bootcmd
 - write-files
 - disk_setup
 - mounts
 - set_hostname
 - update_hostname
 - update_etc_hosts
 - users-groups
 - ssh
cloud_config_modules:
 - set-passwords
 - timezone
 - runcmd
cloud_final_modules:
 - write-files-deferred
 - scripts-per-once
 - scripts-per-boot
 - scripts-per-instance
 - scripts-user
 - final-message
 - power-state-change
"""

FILES: dict[str, str] = {
    "etc/cloud/cloud.cfg.d/90-vmlog.cfg": CLOUD_CFG,
    "etc/fstab": "LABEL=vmlog-root / ext4 defaults,noatime,errors=remount-ro 0 1\n",
    "etc/hostname": "vmlog-debian\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 vmlog-debian\n::1 localhost ip6-localhost ip6-loopback\n",
    # every NIC, whatever the hypervisor names it; no wait for it at boot (the wait-online unit is masked)
    "etc/systemd/network/20-dhcp.network": "[Match]\nName=eth* en*\n\n[Network]\nDHCP=yes\n",
    # the journal in RAM: a log written to disk would land in every state's overlay
    "etc/systemd/journald.conf.d/vmlog.conf": "[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n",
    # a unit that hangs must not hold up a boot or a shutdown under TCG for minutes
    "etc/systemd/system.conf.d/vmlog.conf": "[Manager]\nDefaultTimeoutStartSec=60s\nDefaultTimeoutStopSec=15s\n",
    # initramfs: only what mounting the root needs (ext4 is built into the cloud kernel)
    "etc/initramfs-tools/conf.d/vmlog.conf": "MODULES=list\nCOMPRESS=zstd\n",
    "etc/initramfs-tools/modules": "virtio_pci\nvirtio_blk\nvirtio_scsi\nsd_mod\n",
    "etc/ssh/sshd_config.d/vmlog.conf": "PasswordAuthentication no\nUseDNS no\n",
    "etc/modules-load.d/vmlog.conf": "virtiofs\n",
}
