"""`python -m sandbox.canvas --port 8766`: a standalone Canvas sandbox until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib

from sandbox.canvas.server import CanvasSandbox


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.canvas", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--account-id", default="1")
    parser.add_argument("--token", default=None, help="default: a random token, printed below")
    parser.add_argument("--scenario", default="auto", help="default outcome for uploads (see SCENARIOS)")
    args = parser.parse_args()
    sandbox = CanvasSandbox(args.host, args.port, account_id=args.account_id, token=args.token)
    sandbox.state.default_scenario = args.scenario
    with sandbox:
        # The sandbox token is a throwaway made up for this process; printing it is the point.
        print(f"CANVAS_BASE_URL={sandbox.base_url}")
        print(f"CANVAS_ACCOUNT_ID={sandbox.account_id}")
        print(f"CANVAS_ACCESS_TOKEN={sandbox.token}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sandbox.serve_forever()


if __name__ == "__main__":
    main()
