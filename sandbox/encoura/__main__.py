"""`python -m sandbox.encoura --port 8765`: a sandbox to point a client or the official sample at."""

from __future__ import annotations

import argparse
import signal
import threading

from common import exit_codes
from common.cli import run_cli
from common.errors import ConfigError
from common.settings_base import is_loopback_host
from sandbox.encoura.config import SandboxConfig
from sandbox.encoura.server import SandboxServer


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.encoura", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; loopback unless you mean otherwise")
    parser.add_argument("--no-samples", action="store_true", help="start without the sample exports")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction of /v1 calls that fail")
    parser.add_argument("--seed", type=int, default=0, help="seed for the fault sequence")
    return parser.parse_args()


def main() -> int:
    args = _parse_args()
    try:
        config = SandboxConfig(host=args.host, port=args.port, fail_rate=args.fail_rate, seed=args.seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    server = SandboxServer(config, seed_samples=not args.no_samples)
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(f"--host {args.host} --port {args.port}: cannot listen there ({exc.strerror})") from None
    creds = server.credentials
    if not is_loopback_host(args.host):
        print(f"WARNING: listening on {args.host}, reachable beyond this machine (credentials are fake).")
    print(f"Encoura sandbox at {server.base_url}  (fake credentials, safe to share)")
    for name, value in server.env().items():
        print(f"  {name}={value}")
    print(
        f'Try: curl -s -H \'x-api-key: {creds["api_key"]}\' -d \'{{"userName": "{creds["username"]}", '
        f'"password": "{creds["password"]}", "acceptedTerms": true}}\' {server.base_url}/login'
    )
    print("Ctrl-C to stop.", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the same clean way under a process manager
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("Sandbox stopped.")  # Ctrl-C is how this command is meant to end: not an interruption
    finally:
        server.stop()
    return exit_codes.OK


if __name__ == "__main__":
    run_cli(main)
