"""The fault-injection measurement of issue 7: one clean and one faulty HIL session under QEMU.

    python bench/faults.py --data-dir /work/shared/datasets/mnist --samples 10000 \
        --faults drop=0.01,flip=0.001 --fault-seed 1 --json out/faults.json [--feed replay]

Three sessions run the same export and firmware: a clean direct link, the proxy
without faults (the cost of the extra hop), and the faulty one, which goes through the
fault-injecting TCP proxy (mcuflow.link.faults) with resends, re-HELLOs
(mcuflow.link.recovery) and, once whole frames stop getting through, fragmented requests
(``--fragment auto``, mcuflow.link.fragment). Prints frames sent, CRC-rejected, retried, lost, parity
mismatches (corrupt answers accepted) and the wall-time overhead against the clean link.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mcuflow import atomic, jsonshape
from mcuflow.hil import run_hil
from mcuflow.link.fragment import parse_fragment

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "examples" / "paper_sparse.pt"))
    ap.add_argument("--board", default="qemu-mps2-an386")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--faults", default="drop=0.01,flip=0.001")
    ap.add_argument("--fault-seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=0.05, help="Base wait per answer (plus the bytes' UART time).")
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--fragment", default="auto", help="auto, off or a part size in bytes.")
    ap.add_argument(
        "--feed",
        choices=("host", "replay"),
        default="host",
        help="host: every input goes down the faulty link; replay: the inputs lie in the device's memory, "
        "the faults hit the REPLAY requests and every answer.",
    )
    ap.add_argument("--skip-clean", action="store_true", help="Only the faulty session.")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    common = dict(samples=a.samples, data_dir=a.data_dir, workdir=a.workdir, show_progress=False, log=log, feed=a.feed)
    clean = None if a.skip_clean else run_hil(a.checkpoint, a.board, timeout=5.0, **common)
    # The proxy alone (no faults): separates the cost of the extra hop from the cost of recovery.
    hop = None if a.skip_clean else run_hil(a.checkpoint, a.board, timeout=0.5, faults="", fragment="off", **common)
    faulty = run_hil(
        a.checkpoint,
        a.board,
        timeout=a.timeout,
        retries=a.retries,
        faults=a.faults,
        fault_seed=a.fault_seed,
        fragment=parse_fragment(a.fragment),
        **common,
    )
    link, extra = faulty.link, faulty.link.faults  # extra: the recovery and fault counters of the proxy
    summary = {
        "feed": a.feed,
        "samples": faulty.samples,
        "faults": jsonshape.dump(faulty.faults),
        "lost": faulty.lost,
        "errors": faulty.errors,
        "corrupt_answers_accepted": faulty.parity_mismatches,
        "frames_sent": link.frames_sent,
        "frames_retried": link.retries,
        "timeouts": link.timeouts,
        "rehellos": extra.rehellos,
        "crc_rejected_by_device": extra.device_frames_dropped,
        "crc_rejected_by_host": extra.frames_rejected_by_host,
        "stale_replies_ignored": link.stale,
        "fragmented_requests": extra.fragment_transfers,
        "parts_sent": extra.fragment_parts_sent,
        "parts_resent": extra.fragment_parts_resent,
        "commits_sent": extra.fragment_commits_sent,
        "missing_part_reports": extra.fragment_statuses,
        "body_check_failures": extra.fragment_check_failures,
        "commit_timeouts": extra.fragment_commit_timeouts,
        "bytes_down": link.bytes_down,
        "bytes_up": link.bytes_up,
        "injected": {f"{d}_{kind}": n for d, counts in extra.injected.items() for kind, n in counts.items() if n},
        "faulty_session_seconds": faulty.session_seconds,
        "clean_session_seconds": clean.session_seconds if clean else None,
        "proxy_no_faults_session_seconds": hop.session_seconds if hop else None,
        "clean_lost": clean.lost if clean else None,
        "clean_parity_mismatches": clean.parity_mismatches if clean else None,
    }
    if clean:
        summary["overhead"] = faulty.session_seconds / clean.session_seconds - 1
        summary["overhead_of_the_proxy_hop"] = hop.session_seconds / clean.session_seconds - 1
    print(json.dumps(summary, indent=2))
    if a.json:
        sessions = {"faulty": faulty, "clean": clean, "proxy_no_faults": hop}
        text = json.dumps({"summary": summary, **jsonshape.dump(sessions)}, indent=2) + "\n"
        atomic.write_text(a.json, text)
    return 0 if not (faulty.lost or faulty.parity_mismatches or faulty.errors) else 3


if __name__ == "__main__":
    sys.exit(main())
