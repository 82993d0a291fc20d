"""What every standard guest agent must do, as checks on one running guest's :class:`GuestAgent`.

The conformance suite runs them on the simulated Guest Additions and VMware Tools (test_guest_agent.py);
a test with a real guest (qemu-ga in the Debian appliance) runs the same functions on its own booted VM, so
the real agent and the simulated ones are held to one standard.
"""

from __future__ import annotations

from hypervisors.errors import ReportableError, Unsupported
from hypervisors.guest import GuestAgent


def check_ping_and_info(agent: GuestAgent) -> None:
    agent.ping()
    agent.wait_ready(10)
    info = agent.info()
    assert info.agent == agent.kind


def check_exec(agent: GuestAgent) -> None:
    """Exit codes, stdout and stderr come back apart and unchanged; arguments arrive as given; stdin is fed."""
    result = agent.exec(["/bin/sh", "-c", 'printf "%s|" "$@"; echo oops >&2; exit 3', "sh", "a b", "it's", "$HOME"])
    assert result.exit_code == 3
    assert result.stdout == b"a b|it's|$HOME|"
    assert result.stderr == b"oops\n"
    assert agent.shell("exit 0").exit_code == 0
    assert agent.exec(["cat"], stdin=b"line 1\nline 2\n").stdout == b"line 1\nline 2\n"
    assert "42" in agent.check_shell("echo 42")


def check_file_round_trip(agent: GuestAgent) -> None:
    """A file written through the agent reads back byte for byte, and the guest sees the same bytes."""
    path = agent.check_shell("mktemp").strip()
    data = bytes(range(256)) * 64 + b"\nend"
    try:
        agent.write_file(path, data, mode=0o600)
        assert agent.read_file(path) == data
        assert agent.check_shell(f"wc -c < {path}").strip() == str(len(data))
        assert agent.check_shell(f"stat -c %a {path}").strip() == "600"
    finally:
        agent.shell(f"rm -f {path}")


def check_os_and_network(agent: GuestAgent) -> None:
    os_info = agent.osinfo()
    assert os_info.kernel or os_info.name
    interfaces = agent.network_interfaces()
    addresses = [address for interface in interfaces for address in interface.addresses]
    assert any("/" in address and not address.startswith("127.") for address in addresses), interfaces


def check_fsfreeze(agent: GuestAgent, *, offered: bool) -> None:
    """Where the agent freezes, freeze and thaw pair up; where not, ``Unsupported`` says the save is not quiesced."""
    if offered:
        frozen = agent.fsfreeze()
        assert agent.fsthaw() == frozen
        return
    try:
        agent.fsfreeze()
    except Unsupported as exc:
        assert "crash-consistent" in exc.message
    else:
        raise AssertionError(f"{agent.kind} claims to freeze filesystems")


def check_no_agent(agent: GuestAgent) -> ReportableError:
    """A running guest without the agent: every call fails with the tool's words and a fix, never hangs."""
    errors = []
    for call in (agent.ping, lambda: agent.exec(["/bin/true"])):
        try:
            call()
        except Unsupported:
            raise
        except ReportableError as exc:
            errors.append(exc)
        else:
            raise AssertionError(f"{agent.kind} answered without an agent in the guest")
    assert all(exc.fix for exc in errors), [str(e) for e in errors]
    return errors[-1]
