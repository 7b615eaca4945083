"""What the benchmarks read from the machine and from their own process: the load average that
other work puts on a shared machine, and the kernel's resident-memory counters."""

from __future__ import annotations

import os


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as a report prints them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM its peak), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    """Restart the kernel's high-water mark (VmHWM) from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
