"""A render in a child process: its result or its refusal comes back; a crash, an overrun of its
memory or of the attempt's deadline ends it with a code, and leaves no process behind."""

from __future__ import annotations

import ctypes
import os
import signal
import time

import pytest

from chalicelib.deadline import Deadline, DeadlineExceeded
from chalicelib.errors import ImageRejected
from chalicelib.imaging.isolation import run_isolated

pytestmark = pytest.mark.integration  # each test forks

MIB = 1024 * 1024


def _refuse() -> None:
    raise ImageRejected("The JPEG is refused.", "too_many_scans")


def _crash() -> None:
    ctypes.string_at(0)  # reads address 0: SIGSEGV, as a decoder's bug would


def test_the_work_s_result_comes_back() -> None:
    assert run_isolated(lambda: {"variants": [b"\x00" * 3_000_000]}, 256 * MIB) == {"variants": [b"\x00" * 3_000_000]}


def test_a_refusal_comes_back_with_its_code() -> None:
    with pytest.raises(ImageRejected) as refused:
        run_isolated(_refuse, 256 * MIB)
    assert (refused.value.code, refused.value.message) == ("too_many_scans", "The JPEG is refused.")


def test_a_crash_ends_as_decoder_crashed() -> None:
    with pytest.raises(ImageRejected) as crashed:
        run_isolated(_crash, 256 * MIB)
    assert crashed.value.code == "decoder_crashed"
    assert "SIGSEGV" in crashed.value.message


def test_allocating_past_the_limit_ends_as_too_much_memory() -> None:
    with pytest.raises(ImageRejected) as refused:
        run_isolated(lambda: bytearray(512 * MIB), 128 * MIB)
    assert refused.value.code == "too_much_memory"


def test_the_deadline_stops_the_wait_and_the_child() -> None:
    children_before = _children()
    with pytest.raises(DeadlineExceeded), Deadline(0.2).enforced():
        run_isolated(lambda: time.sleep(60), 256 * MIB)
    assert _children() == children_before


def _children() -> set[str]:
    """This process's live children (a killed child left unreaped would still be listed)."""
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return set(children.read().split())


def test_a_child_killed_outright_ran_out_of_memory() -> None:
    """What the kernel's out-of-memory killer does to the largest process when the function's memory is used up."""
    with pytest.raises(ImageRejected) as killed:
        run_isolated(lambda: os.kill(os.getpid(), signal.SIGKILL), 256 * MIB)
    assert killed.value.code == "too_much_memory"
