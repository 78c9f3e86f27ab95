"""Peak memory of one Gram contestant, measured in a fresh process (run by run.py).

Usage: ``python benchmarks/memprobe.py {candidate|baseline} N D SEED``; prints one JSON line.

Two measurements of the same call:

* ``tracemalloc_peak``: peak of memory traced by ``tracemalloc`` (started after the inputs are
  allocated) — numpy registers every array buffer with tracemalloc, so this is the peak of live
  numpy (and Python) allocations made by the call, outputs included.
* ``rss_delta``: peak resident set size during the call minus the resident set size just before
  it — what the OS saw, including allocator slack and BLAS buffers first touched by the call.
  The peak is ``VmHWM`` from /proc/self/status after resetting it by writing 5 to
  /proc/self/clear_refs (Linux); where that reset is unavailable, ``ru_maxrss`` (which then also
  remembers the import-time peak, flagged by ``rss_reliable = false``).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tracemalloc


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def main() -> None:
    which, n, d, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    from baselines import gaussian_inputs
    from gramcases import CONTESTANTS

    fn, label = CONTESTANTS[which]()
    X = gaussian_inputs(n, d, seed)
    gc.collect()
    rss_before = _rss_bytes()
    reset = _reset_peak_rss()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    nngp, ntk = fn(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if reset:
        peak_rss, reliable = _peak_rss_bytes(), True
    else:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        reliable = peak_rss > maxrss_before
    print(
        json.dumps(
            {
                "which": which,
                "label": label,
                "output_bytes": int(nngp.nbytes + ntk.nbytes),
                "tracemalloc_peak": int(peak),
                "rss_delta": int(peak_rss - rss_before),
                "rss_peak_source": "VmHWM after clear_refs" if reset else "ru_maxrss",
                # False if the call never exceeded the process's import-time peak (rss_delta unusable)
                "rss_reliable": bool(reliable),
            }
        )
    )


if __name__ == "__main__":
    main()
