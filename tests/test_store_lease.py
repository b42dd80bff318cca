"""The lease rules the durable stores share (fanflow.stores._lease)."""

from __future__ import annotations

import os

from store_contract import HOST, dead_pid

from fanflow._runtime.lease import new_holder
from fanflow.stores._lease import blocking_holder, holder_is_dead, lease_error


def test_exited_process_on_this_host_is_dead() -> None:
    """A holder whose pid on this host has exited is dead."""
    assert holder_is_dead(f"{HOST}:{dead_pid()}:t")


def test_running_process_on_this_host_is_alive() -> None:
    """A holder the engine names for this very process is alive."""
    assert not holder_is_dead(new_holder())
    assert not holder_is_dead(f"{HOST}:{os.getpid()}:t")


def test_other_hosts_and_odd_names_are_never_judged_dead() -> None:
    """Holders on another host, without a pid, or with pid 0 lapse by ttl only."""
    for holder in [f"elsewhere-{HOST}:{dead_pid()}:t", "someone", f"{HOST}:0:t", f"{HOST}:x:t"]:
        assert not holder_is_dead(holder)


def test_blocking_holder_rules() -> None:
    """Only someone else's unexpired lease of a live holder blocks, with the seconds left."""
    assert blocking_holder(None, "me", 10.0) is None
    assert blocking_holder(("me", 20.0), "me", 10.0) is None
    assert blocking_holder(("you", 10.0), "me", 10.0) is None
    assert blocking_holder((f"{HOST}:{dead_pid()}:t", 99.0), "me", 10.0) is None
    assert blocking_holder(("you", 12.5), "me", 10.0) == ("you", 2.5)


def test_lease_error_names_run_holder_and_time_left() -> None:
    """The LeaseError says which run, who holds it and for how long."""
    message = str(lease_error("r7", ("host:12:ab", 3.04)))
    assert message.startswith("run r7 is held by host:12:ab for 3.0 s more")
