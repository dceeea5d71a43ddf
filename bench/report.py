"""Targets of issue #8 checked against one run's results, and the short markdown table."""

from __future__ import annotations

from typing import Any

MB = 1_000_000


def _get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def evaluate_targets(r: dict[str, Any]) -> dict[str, Any]:
    """Each target with its measured value; `met` is None when the scenario did not run."""
    t: dict[str, Any] = {}
    flow_s = _get(r, "throughput", "flow", "seconds")
    flow_run_s = _get(r, "throughput", "flow", "flow_run_seconds")
    base_s = _get(r, "throughput", "baseline", "seconds")
    rclone_s = _get(r, "throughput", "rclone", "seconds")
    floor_s = _get(r, "throughput", "floor_seconds")
    if flow_s and base_s:
        speedup = base_s / flow_s
        t["speedup_vs_baseline"] = {"value": round(speedup, 2), "target": ">= 3.0", "met": speedup >= 3.0}
    if flow_s and rclone_s:
        ratio = flow_s / rclone_s
        t["time_vs_rclone"] = {"value": round(ratio, 2), "target": "<= 1.0", "met": ratio <= 1.0}
    measured = _get(r, "throughput", "measured_floor_seconds")
    if flow_s and measured:
        t["time_vs_measured_link"] = {
            "value": round(flow_s / measured, 2),
            "target": "informative: the floor this machine's proxy actually offered during the run",
            "met": None,
        }
    if flow_s and floor_s:
        ratio = flow_s / floor_s
        t["time_vs_floor"] = {"value": round(ratio, 2), "target": "<= 1.3", "met": ratio <= 1.3}
        if flow_run_s:
            t["flow_run_time_vs_floor"] = {
                "value": round(flow_run_s / floor_s, 2),
                "target": "<= 1.3 (informative: the flow run alone, without process start-up)",
                "met": flow_run_s / floor_s <= 1.3,
            }
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
            "target": "< 50 (marginal, running server)",
            "met": marginal < 50,
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
    tp = r.get("throughput")
    if tp:
        n, size = tp["files"], tp["file_bytes"] / MB
        link = (
            f"{tp['latency_ms_each_way']:g} ms each way, {tp['bandwidth_mbit']:g} Mbit/s shared; "
            f"best of {tp.get('repeat', 1)} interleaved rounds"
        )
        flow, base, rc = tp["flow"], tp["baseline"], tp["rclone"]
        lines += [
            _row(
                f"Export {n} x {size:g} MB via SFTP ({link}): **our flow**, process wall time",
                f"{_s(flow['seconds'])}, {flow['mb_per_s']} MB/s{_cpu(flow)}{_verified(flow)}",
                "-",
                "-",
            ),
            _row(
                "... our flow: the Prefect flow run alone (no Python/Prefect import)",
                _s(flow.get("flow_run_seconds")),
                "-",
                "-",
            ),
        ]
        if "whatif" in tp:
            w = tp["whatif"]
            lines.append(
                _row(
                    "... what-if: our flow with DESTINATIONS__SLATE__MAX_CONCURRENCY=8 (default 4)",
                    f"{_s(w['seconds'])} wall, flow run {_s(w.get('flow_run_seconds'))}{_cpu(w)}{_verified(w)}",
                    "-",
                    "-",
                )
            )
        lines += [
            _row(
                "... sequential baseline script (requests + paramiko)",
                f"{_s(base['seconds'])}, {base['mb_per_s']} MB/s{_cpu(base)}{_verified(base)}",
                "-",
                "-",
            ),
            _row(
                f"... rclone copy --transfers {rc['transfers']} (SFTP leg only, from local disk)",
                f"{_s(rc['seconds'])}, {rc['mb_per_s']} MB/s{_cpu(rc)}{_verified(rc)}",
                "-",
                "-",
            ),
            _row("... physical floor (bytes / proxy bandwidth)", _s(tp["floor_seconds"]), "-", "-"),
            _row(
                "... link as measured now: plain TCP, 8 streams, same proxy settings",
                f"{_s(tp.get('measured_floor_seconds'))}, {_get(tp, 'link', 'mb_per_s')} MB/s "
                f"({_get(tp, 'link', 'share_of_cap')} of the cap)",
                "-",
                "-",
            ),
            _row(
                "Speed-up vs baseline", _v(t, "speedup_vs_baseline", "x"), ">= 3x", _met(t.get("speedup_vs_baseline"))
            ),
            _row("Our time / rclone's time", _v(t, "time_vs_rclone", "x"), "<= 1.0x", _met(t.get("time_vs_rclone"))),
            _row(
                "Our time / physical floor",
                f"{_v(t, 'time_vs_floor', 'x')} (flow run alone: {_v(t, 'flow_run_time_vs_floor', 'x')}; "
                f"vs the measured link: {_v(t, 'time_vs_measured_link', 'x')})",
                "<= 1.3x",
                _met(t.get("time_vs_floor")),
            ),
        ]
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
                "< 50 ms",
                _met(t.get("orchestration_ms_per_file")),
            )
        )
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


def _v(t: dict[str, Any], key: str, unit: str) -> str:
    item = t.get(key)
    return "-" if not item else f"{item['value']:.2f}{unit}"
