"""The sandbox process that `residency sandbox up` starts in the background:
`python -m residency_cli.sandbox.daemon --port N --map PATH --workdir DIR
[--label-hosts] [--faults SPEC --fault-seed N]`.

It generates the credentials it accepts (auth.py), serves, seeds, records itself and them in
the state file (state.py, 0600), and on SIGTERM stops every task process, the server, and
removes its record. Exit codes: 0 stopped cleanly, 2 bad
arguments or map, 98 the port is in use (the message says so on stderr).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

EXIT_PORT_IN_USE = 98


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="residency-sandbox-daemon")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--map", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--label-hosts", action="store_true")
    parser.add_argument("--faults", default=None)
    parser.add_argument("--fault-seed", type=int, default=0)
    args = parser.parse_args(argv)

    from residency_cli.sandbox.state import PRIVATE_UMASK

    # Everything the sandbox and its simulated hosts write (copies of employee files,
    # reports, task folders, the record with its credentials) is its owner's alone.
    os.umask(PRIVATE_UMASK)

    from residency_cli.errors import ResidencyError
    from residency_cli.sandbox.seed import load_bundle, load_map, sandbox_region, seed
    from residency_cli.sandbox.server import PortInUseError, SandboxServer
    from residency_cli.sandbox.state import SandboxState, clear_state, read_state, write_state
    from residency_cli.sandbox.world import FaultSpecError, parse_fault_spec, world

    started = time.monotonic()
    map_path = Path(args.map)
    workdir = Path(args.workdir)
    try:
        config = load_map(map_path)
        bundle = load_bundle(map_path)
    except ResidencyError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    try:
        plan = parse_fault_spec(args.faults)
    except FaultSpecError as error:
        sys.stderr.write(f"error: --faults: {error}\n")
        return 2
    region = sandbox_region(config)
    server = SandboxServer(args.port, region, workdir)
    try:
        endpoint = server.start()
    except PortInUseError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_PORT_IN_USE
    except ResidencyError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    world().pgid_file = workdir / "task-pgids"
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        result = seed(
            config, bundle, endpoint=endpoint, region=region, label_hosts=args.label_hosts
        )
        write_state(
            SandboxState(
                endpoint=endpoint,
                pid=os.getpid(),
                port=server.port,
                region=region,
                workdir=str(workdir),
                config=str(map_path),
                credentials=world().credentials,
            )
        )
        # Seeding is never faulted (internal calls); the task processes' calls and every
        # client's are, from now on.
        world().faults.configure(plan, args.fault_seed)
        hosts = ", ".join(f"{h.hostname} ({h.instance_id})" for h in result.hosts.values())
        faults = f"; faults {plan.spec} (seed {args.fault_seed})" if plan else ""
        sys.stdout.write(
            f"sandbox listening on {endpoint} (pid {os.getpid()}), seeded from {map_path} "
            f"in {time.monotonic() - started:.2f}s: cluster {result.cluster}, hosts {hosts}"
            f"{faults}\n"
        )
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        recorded = read_state()
        if recorded is not None and recorded.pid == os.getpid():
            clear_state()
        sys.stdout.write("sandbox stopped\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
