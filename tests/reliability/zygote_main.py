"""Fork server for the crash suites (see harness.Zygote): import the flow once, fork a run per request.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
  {"op": "spawn", "env": {...}, "argv": [...], "stdout": path, "stderr": path} -> {"pid": n}
  {"op": "wait", "pid": n} -> {"code": exit code, negative for a signal}
  {"op": "poll", "pid": n} -> {"code": null | exit code}
"""

from __future__ import annotations

import json
import os
import sys
import threading


def _child(request: dict) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["python -m flows.encoura_export", *request["argv"]]
    code = 70
    try:
        from common.cli import run_cli
        from flows.encoura_export import main

        run_cli(lambda: main(request["argv"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    import flows.encoura_export  # noqa: F401 - the expensive imports, done once

    assert threading.active_count() == 1, "fork needs a single-threaded parent"
    out = sys.stdout
    reaped: dict[int, int] = {}
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "spawn":
            out.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request)
            reply = {"pid": pid}
        elif op == "wait":
            if request["pid"] not in reaped:
                _, status = os.waitpid(request["pid"], 0)
                reaped[request["pid"]] = os.waitstatus_to_exitcode(status)
            reply = {"code": reaped[request["pid"]]}
        elif op == "poll":
            if request["pid"] not in reaped:
                pid, status = os.waitpid(request["pid"], os.WNOHANG)
                if pid:
                    reaped[pid] = os.waitstatus_to_exitcode(status)
            reply = {"code": reaped.get(request["pid"])}
        else:
            reply = {"error": f"unknown op {op!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
