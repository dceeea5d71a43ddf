"""Targets of issue #8 checked against one run's results, and the short markdown table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MB = 1_000_000
# Issue 15's goal for orchestration (slope of Prefect flow-run time per file, local folder): one
# number, used both for "met" and for the table's Target column, so the two cannot disagree again.
ORCHESTRATION_TARGET_MS = 10.0


def _get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def unsound_runs(r: Any) -> int:
    """How many measured runs anywhere in the results failed (non-zero exit) or delivered wrong files."""
    if isinstance(r, list):
        return sum(unsound_runs(item) for item in r)
    if not isinstance(r, dict):
        return 0
    own = int(r.get("returncode") not in (0, None) or (r.get("verify") or {}).get("ok", True) is False)
    return own + sum(unsound_runs(value) for value in r.values())


def evaluate_targets(r: dict[str, Any]) -> dict[str, Any]:
    """Each target with its measured value; `met` is None when the scenario did not run.

    A fast but wrong run proves nothing: when any run failed or was not verified, no target is met."""
    t = _measured_targets(r)
    if unsound_runs(r):
        for target in t.values():
            if target["met"]:
                target["met"] = False
                target["void"] = "a run in this benchmark failed or delivered wrong files"
    return t


def _measured_targets(r: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = {}
    lat = _get(r, "throughput", "latency") or {}
    if _get(lat, "flow", "seconds"):
        flow_s = lat["flow"]["seconds"]
        if _get(lat, "rclone", "seconds"):
            ratio = flow_s / lat["rclone"]["seconds"]
            t["latency_time_vs_rclone"] = {"value": round(ratio, 2), "target": "<= 0.5", "met": ratio <= 0.5}
        if _get(lat, "baseline", "seconds"):
            speedup = lat["baseline"]["seconds"] / flow_s
            t["latency_speedup_vs_script"] = {"value": round(speedup, 2), "target": ">= 8", "met": speedup >= 8}
    bw = _get(r, "throughput", "bandwidth") or {}
    if _get(bw, "flow", "seconds"):
        flow_s = bw["flow"]["seconds"]
        if _get(bw, "rclone", "seconds"):
            ratio = flow_s / bw["rclone"]["seconds"]
            t["bandwidth_time_vs_rclone"] = {"value": round(ratio, 2), "target": "< 1.0", "met": ratio < 1.0}
        if bw.get("floor_seconds"):
            ratio = flow_s / bw["floor_seconds"]
            t["bandwidth_time_vs_floor"] = {"value": round(ratio, 2), "target": "<= 1.15", "met": ratio <= 1.15}
        if bw.get("measured_floor_seconds"):
            t["bandwidth_time_vs_measured_link"] = {
                "value": round(flow_s / bw["measured_floor_seconds"], 2),
                "target": "informative: the floor this machine's proxy actually offered during the run",
                "met": None,
            }
    rt = _get(r, "roundtrips", "flow", "round_trips_per_file")
    if rt is not None:
        t["round_trips_per_file"] = {"value": rt, "target": "<= 3 (first attempt, at the proxy)", "met": rt <= 3}
    mem_runs = _get(r, "memory", "runs") or []
    if mem_runs:
        biggest = max(mem_runs, key=lambda m: m["file_bytes"])
        t["peak_rss_big_export_mb"] = {
            "value": biggest["peak_rss_mb"],
            "file_mb": round(biggest["file_bytes"] / MB),
            "target": "< 300",
            "met": biggest["peak_rss_mb"] < 300,
        }
        if len(mem_runs) > 1:
            smallest = min(mem_runs, key=lambda m: m["file_bytes"])
            growth = biggest["peak_rss_mb"] - smallest["peak_rss_mb"]
            t["rss_growth_with_size_mb"] = {
                "value": round(growth, 1),
                "target": "flat (< 50 MB more for the bigger file)",
                "met": growth < 50,
            }
    marginal = _get(r, "orchestration", "ms_per_file_marginal")
    if marginal is not None:
        t["orchestration_ms_per_file"] = {
            "value": marginal,
            "target": f"<= {ORCHESTRATION_TARGET_MS:g} (marginal, running server)",
            "met": marginal <= ORCHESTRATION_TARGET_MS,
        }
    return t


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _verified(run: dict[str, Any] | None) -> str:
    if not run:
        return ""
    if run.get("returncode") not in (0, None):
        return " **FAILED (exit {})**".format(run.get("returncode"))
    v = run.get("verify") or {}
    return "" if v.get("ok", True) else " **NOT VERIFIED**"


def _met(target: dict[str, Any] | None) -> str:
    if not target:
        return "-"
    return "yes" if target["met"] else "**no**"


def _cpu(run: dict[str, Any]) -> str:
    return f", {run['cpu_seconds']:.1f} s CPU" if run.get("cpu_seconds") is not None else ""


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(r: dict[str, Any]) -> str:
    m = r.get("machine", {})
    t = r.get("targets", {})
    lines = [
        f"Benchmark run {r.get('started_at', '')} on {m.get('cpu_model')} ({m.get('cpu_cores')} cores), "
        f"{m.get('ram_gib')} GiB RAM, Python {m.get('python')}, Prefect {m.get('prefect')}, "
        f"{m.get('openssh')}, {m.get('rclone')}. Load average at start/end: "
        f"{(m.get('load_average_at_start') or ['?'])[0]} / {(m.get('load_average_at_end') or ['?'])[0]}. "
        f"Whole run: {r.get('total_seconds', 0):.0f} s.",
        "",
        _row("Measurement", "Result", "Target", "Met"),
        "|---|---|---|---|",
        _row(
            "Prefect API server start-up (once, not counted below)",
            _s(r.get("prefect_server_startup_seconds")),
            "-",
            "-",
        ),
    ]
    for name, tp in (r.get("throughput") or {}).items():
        n, size = tp["files"], tp["file_bytes"] / 1000
        link = (
            f"{tp['latency_ms_each_way']:g} ms each way, {tp['bandwidth_mbit']:g} Mbit/s shared; "
            f"best of {tp.get('repeat', 1)} interleaved rounds"
        )
        for key, label in (
            ("flow", f"**{name}-bound** {n} x {size:g} kB via SFTP ({link}): **our flow**, process wall time"),
            ("whatif", "... what-if: our flow with DESTINATIONS__SLATE__MAX_CONCURRENCY=8"),
            ("baseline", "... sequential script (requests + paramiko)"),
            ("rclone", f"... rclone copy --transfers {_get(tp, 'rclone', 'transfers')} (SFTP leg only, local disk)"),
        ):
            run = tp.get(key)
            if not run:
                continue
            extra = ""
            if run.get("flow_run_seconds"):
                extra = f", flow run alone {_s(run['flow_run_seconds'])}"
            if run.get("startup_seconds") is not None:
                extra += f", start-up {_s(run['startup_seconds'])}"
            if run.get("transfer_seconds") is not None:
                extra += f", file data moving for {_s(run['transfer_seconds'])}"
            lines.append(
                _row(
                    label,
                    f"{_s(run['seconds'])}, {run['mb_per_s']} MB/s{_cpu(run)}, peak RSS {run.get('peak_rss_mb')} MB, "
                    f"{run.get('connections', '-')} SSH conn., {run.get('turnarounds', '-')} turnarounds at the proxy"
                    f"{extra}{_verified(run)}",
                    "-",
                    "-",
                )
            )
        lines.append(
            _row(
                "... floor: bytes / proxy bandwidth (plain TCP, 8 streams, measured now)",
                f"{_s(tp['floor_seconds'])} ({_s(tp.get('measured_floor_seconds'))})",
                "-",
                "-",
            )
        )
        if name == "latency":
            lines.append(_row("... our time / rclone t8", _v(t, "latency_time_vs_rclone", "x"), "<= 0.5x",
                              _met(t.get("latency_time_vs_rclone"))))
            lines.append(_row("... script time / our time", _v(t, "latency_speedup_vs_script", "x"), ">= 8x",
                              _met(t.get("latency_speedup_vs_script"))))
        if name == "bandwidth":
            lines.append(_row("... our time / rclone t8", _v(t, "bandwidth_time_vs_rclone", "x"), "< 1.0x",
                              _met(t.get("bandwidth_time_vs_rclone"))))
            lines.append(_row("... our time / floor", _v(t, "bandwidth_time_vs_floor", "x"), "<= 1.15x",
                              _met(t.get("bandwidth_time_vs_floor"))))
    rts = r.get("roundtrips")
    if rts:
        for key, label in (("flow", "our flow"), ("rclone", "rclone --transfers 1")):
            if key in rts:
                lines.append(
                    _row(
                        f"SFTP round trips per 20 kB file at the proxy, one file at a time: {label} "
                        f"(slope {rts['counts'][0]} -> {rts['counts'][1]} files)",
                        f"{rts[key]['round_trips_per_file']}",
                        "<= 3" if key == "flow" else "-",
                        _met(t.get("round_trips_per_file")) if key == "flow" else "-",
                    )
                )
    st = r.get("startup")
    if st:
        top = ", ".join(f"{i['module']} {i['cumulative_ms']:.0f} ms" for i in st["top_level_imports_ms"][:5])
        lines.append(
            _row(
                "Start-up: `python -c pass` / `import flows.encoura_export`",
                f"{_s(st['python_bare_seconds'])} / {_s(st['import_export_flow_seconds'])}; top imports: {top}",
                "-",
                "-",
            )
        )
    mem = r.get("memory")
    if mem:
        cap = mem["proxy_bandwidth_mbit"]
        for run in mem["runs"]:
            lines.append(
                _row(
                    f"Peak RSS of the export process, one {run['file_bytes'] / MB:g} MB export "
                    f"({mem['latency_ms_each_way']:g} ms, {'no bandwidth cap' if not cap else f'{cap:g} Mbit/s'})",
                    f"{run['peak_rss_mb']} MB ({_s(run['seconds'])}){_verified(run)}",
                    "< 300 MB",
                    "yes" if run["peak_rss_mb"] < 300 else "**no**",
                )
            )
    orch = r.get("orchestration")
    if orch:
        for run in orch["runs"]:
            lines.append(
                _row(
                    f"{run['files']} exports of 1 KB to a local folder",
                    f"{_s(run['seconds'])} wall ({run['ms_per_file_wall']} ms/file), flow run "
                    f"{_s(run.get('flow_run_seconds'))} ({run.get('ms_per_file_flow_run', '-')} ms/file)"
                    f"{_verified(run)}",
                    "-",
                    "-",
                )
            )
        lines.append(
            _row(
                "Orchestration overhead per file (slope between the two batches)",
                f"{orch.get('ms_per_file_marginal', '-')} ms wall, {orch.get('cpu_ms_per_file_marginal', '-')} ms CPU",
                f"<= {ORCHESTRATION_TARGET_MS:g} ms",
                _met(t.get("orchestration_ms_per_file")),
            )
        )
        lines.extend(_floor_rows(orch))
    flows = r.get("flows")
    if flows:
        c = flows.get("canvas", {})
        if c.get("median_seconds") is not None:
            lines.append(
                _row(
                    f"Canvas SIS import flow, {c['runs']} files one after another (sandbox, 0.1 s polls)",
                    f"median {c['median_seconds']:.2f} s/file (first {c['seconds'][0]:.2f} s)",
                    "-",
                    "-",
                )
            )
        else:
            lines.append(_row("Canvas SIS import flow", "**failed to run** (see the JSON)", "-", "-"))
        up = flows.get("upload", {})
        if "skipped" in up:
            lines.append(_row("Encoura upload flow", f"not measured: {up['skipped']}", "-", "-"))
        elif up.get("returncode") == 0 and up.get("uploads_received") == up.get("files"):
            lines.append(
                _row(
                    f"Encoura upload flow, one run with {up['files']} CSVs of 800 rows, ~100 kB (sandbox, 0.1 s polls)",
                    f"{up.get('flow_run_seconds_per_file', '-')} s/file flow run "
                    f"({up['wall_seconds_per_file']} s/file with process start-up)",
                    "-",
                    "-",
                )
            )
        else:
            lines.append(_row("Encoura upload flow", "**failed** (see the JSON)", "-", "-"))
    return "\n".join(lines) + "\n"


def _floor_rows(orch: dict[str, Any]) -> list[str]:
    """The floors under the orchestration row (bench/orchestration_floor.py): no target, they are what
    Prefect (and the durable commits) cost per file on this machine and server, whatever our code does."""
    lines = []
    for key, label in (
        ("floor", "... floor: bare Prefect, one no-op task run per file (same task runner, window, server; slope)"),
        ("floor_durable", "... floor: the same + 2 durable SQLite commits per task (WAL, synchronous=FULL)"),
    ):
        floor = orch.get(key)
        if not floor:
            continue
        failed = next((v for run in floor["runs"] if (v := _verified(run))), "")
        lines.append(
            _row(
                label,
                f"{floor.get('ms_per_file_marginal', '-')} ms wall, {floor.get('cpu_ms_per_file_marginal', '-')} ms CPU"
                f"{failed}",
                "-",
                "-",
            )
        )
    for key, label in (
        ("floor", "... our orchestration / bare-Prefect floor"),
        ("floor_durable", "... our orchestration / floor with 2 durable commits"),
    ):
        floor = orch.get(key) or {}
        wall, cpu = floor.get("ours_over_floor_wall"), floor.get("ours_over_floor_cpu")
        if wall is not None or cpu is not None:
            lines.append(_row(label, f"{_x(wall)} wall, {_x(cpu)} CPU", "-", "-"))
    contenders = [("ours", orch), ("floor", orch.get("floor")), ("floor + commits", orch.get("floor_durable"))]
    present = [(name, c) for name, c in contenders if c and "process_ms_per_file_marginal" in c]
    if len(present) > 1:
        names = " / ".join(name for name, _ in present)

        def each(key: str) -> str:
            return " / ".join(f"{c.get(key, '-')}" for _, c in present)

        lines.append(
            _row(
                f"... slope of the whole process, start to exit (Prefect's flush of task-run states and logs "
                f"after the flow run included): {names}",
                f"{each('process_ms_per_file_marginal')} ms",
                "-",
                "-",
            )
        )
        if any("settled_ms_per_file_marginal" in c for _, c in present):
            lines.append(
                _row(
                    f"... slope until the Prefect server is idle again (it takes those states in after the "
                    f"process sent them, even after it exited), and of the server's CPU: {names}",
                    f"{each('settled_ms_per_file_marginal')} ms wall; {each('server_cpu_ms_per_file_marginal')} ms "
                    "server CPU",
                    "-",
                    "-",
                )
            )
    return lines


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _v(t: dict[str, Any], key: str, unit: str) -> str:
    item = t.get(key)
    return "-" if not item else f"{item['value']:.2f}{unit}"


START, END = "<!-- bench:latest:start -->", "<!-- bench:latest:end -->"


def docs_target(repo_root: Path) -> Path:
    """docs/performance.md once the MkDocs site exists (docs/ is there), else the README."""
    return repo_root / "docs" / "performance.md" if (repo_root / "docs").is_dir() else repo_root / "README.md"


def update_docs_table(path: Path, table: str) -> str:
    """Put `table` into `path` and say how: between the markers, else under a "Latest run" heading.

    Markers win because a heading can be renamed by whoever edits the page; the heading fallback
    keeps today's README (no markers yet) working, and the markers are added on the way so the next
    run uses them. A page with neither gets a "## Latest run" section appended.
    """
    block = f"{START}\n\n{table.rstrip()}\n\n{END}"
    text = path.read_text() if path.exists() else "# Performance\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        path.write_text(before + block + after)
        return "markers"
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        stripped = line.lstrip("#")
        if line.startswith("#") and stripped.strip().lower() == "latest run":
            level = len(line) - len(stripped)
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].startswith("#") and
                 len(lines[j]) - len(lines[j].lstrip("#")) <= level),
                len(lines),
            )
            tail = "".join(lines[end:])
            path.write_text("".join(lines[: i + 1]) + "\n" + block + "\n" + ("\n" + tail if tail else ""))
            return "heading"
    path.write_text(text.rstrip("\n") + "\n\n## Latest run\n\n" + block + "\n")
    return "appended"
