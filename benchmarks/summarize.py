"""Prints the Markdown tables of benchmarks/RESULTS.md from the recorded JSON files.

    python benchmarks/summarize.py > /tmp/tables.md
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent


def engine_tables() -> str:
    rows = json.loads((HERE / "engine.json").read_text())
    methods = ["hqray-auto", "hqray-folded", "hqray-statevector", "default.qubit-broadcast",
               "lightning.qubit-adjoint", "qnode-per-sample"]
    cells: dict[tuple, dict] = {}
    for row in rows:
        cells.setdefault((row["n_qubits"], row["layers"], row["batch"]), {})[row["method"]] = row
    lines = ["| n | L | B | auto strategy | " + " | ".join(methods)
             + " | auto vs default.qubit | auto vs per-sample | auto peak MB |",
             "|---" * (len(methods) + 7) + "|"]

    def show(group: dict, method: str) -> str:
        if method not in group:
            return "-"
        row = group[method]
        mark = "*" if row.get("extrapolated_from") else ""
        return f"{row['samples_per_s']:,.0f}{mark}"

    def ratio(group: dict, method: str) -> str:
        auto = group["hqray-auto"]
        return f"{auto['samples_per_s'] / group[method]['samples_per_s']:,.1f}x" if method in group else "-"

    for (n, layers, batch), group in sorted(cells.items()):
        auto = group["hqray-auto"]
        lines.append(f"| {n} | {layers} | {batch:,} | {auto.get('strategy', '')} | "
                     + " | ".join(show(group, m) for m in methods)
                     + f" | {ratio(group, 'default.qubit-broadcast')} | {ratio(group, 'qnode-per-sample')} | "
                     f"{auto['peak_mb']:.0f} |")
    return "\n".join(lines)


def pool_tables() -> str:
    lines = ["| rows | qubits | in-process (1 thread) | pool, 1 worker | pool, 2 workers | efficiency | speedup "
             "| pool, 1 worker, object store | its efficiency | lost rows (chaos kills) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("pool.json", "pool_1m.json"):
        path = HERE / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for qubits, entry in data["circuits"].items():
            rates = entry["rows_per_s"]
            lines.append(f"| {data['rows']:,} | {qubits} | {rates['in_process_1_thread']:,.0f} | "
                         f"{rates['pool_1_worker']:,.0f} | {rates['pool_2_workers']:,.0f} | "
                         f"{entry['efficiency']:.2f} | {entry['speedup']:.2f} | "
                         f"{rates['pool_1_worker_object_store']:,.0f} | {entry['efficiency_object_store']:.2f} | "
                         f"{entry['lost_rows']} ({entry['chaos_kills']}) |")
    small = ["| run | qubits | pool forward ms | pool vjp ms | in-process forward ms | in-process vjp ms |",
             "|---|---|---|---|---|---|"]
    for name in ("pool.json", "pool_1m.json"):
        path = HERE / name
        if path.exists():
            for qubits, entry in json.loads(path.read_text())["circuits"].items():
                if "small_job_ms" in entry:
                    job = entry["small_job_ms"]
                    small.append(f"| {name} | {qubits} | {job['pool_forward']:.2f} | {job['pool_vjp']:.2f} | "
                                 f"{job['in_process_forward']:.2f} | {job['in_process_vjp']:.2f} |")
    return "\n".join(lines) + "\n\n64-row jobs, median of 50 (1-worker pool):\n\n" + "\n".join(small)


def kernel_table() -> str:
    lines = ["| N | qubits | hqray in-process (s) | hqray on pool, 2 workers (s) "
             "| per-pair PennyLane (s, extrapolated) | speedup vs per-pair | peak MB |",
             "|---|---|---|---|---|---|---|"]
    rows = []
    for name in ("kernel.json", "kernel_20k.json"):
        if (HERE / name).exists():
            rows += json.loads((HERE / name).read_text())
    cells: dict[tuple, dict] = {}
    for row in rows:
        cells.setdefault((row["n_qubits"], row["n_samples"]), {})[row["method"]] = row
    for (qubits, n), group in sorted(cells.items(), key=lambda item: (item[0][1], item[0][0])):
        local, per_pair = group["hqray"], group["per-pair"]
        pool = group.get("hqray-pool")
        lines.append(f"| {n:,} | {qubits} | {local['seconds']:.2f} | {pool['seconds']:.2f} | "
                     f"{per_pair['seconds']:,.0f} | {per_pair['seconds'] / local['seconds']:,.0f}x | "
                     f"{local.get('peak_mb', 0):,.0f} |" if pool else "")
    return "\n".join(line for line in lines if line)


def serve_table() -> str:
    data = json.loads((HERE / "serve.json").read_text())
    lines = ["| concurrency | variant | requests/s (median) | each round | p50 ms | p99 ms | rows a model call "
             "| errors |", "|---|---|---|---|---|---|---|---|"]
    for concurrency, level in data["levels"].items():
        for variant, stats in level.items():
            rounds = ", ".join(f"{rate:.1f}" for rate in stats.get("requests_per_s_per_round", []))
            rows = stats.get("rows_per_model_call")
            lines.append(f"| {concurrency} | {variant} | {stats['requests_per_s']:.1f} | {rounds} | "
                         f"{stats['p50_ms']:.2f} | {stats['p99_ms']:.2f} | {f'{rows:.1f}' if rows else '-'} | "
                         f"{stats['errors']} |")
    lines += ["", "| model | p50 at 1 / no-op p50 | batching speedup at 32 (median) | each round "
              "| with calls that cost nothing (batched no-op / unbatched) | each round |", "|---|---|---|---|---|---|"]
    for label in sorted({key.split("_p50_ratio")[0] for key in data if key.endswith("_p50_ratio_to_floor_at_1")}):
        def rounds(key: str) -> str:
            return ", ".join(f"{value:.2f}" for value in data.get(f"{key}_per_round", []))

        speedup, zero_cost = f"{label}_batching_speedup_at_32", f"{label}_zero_cost_batching_at_32"
        lines.append(f"| {label} | {data[f'{label}_p50_ratio_to_floor_at_1']:.2f}x | {data[speedup]:.2f}x | "
                     f"{rounds(speedup)} | {data[zero_cost]:.2f}x | {rounds(zero_cost)} |")
    return "\n".join(lines)


def train_table() -> str:
    rows = json.loads((HERE / "train.json").read_text())
    lines = ["| method | seconds | mean accuracy |", "|---|---|---|"]
    lines += [f"| {r['method']} | {r['seconds']:.2f} | {r['accuracy']:.3f} |" for r in rows]
    lines.append(f"\nspeedup: {rows[1]['seconds'] / rows[0]['seconds']:.1f}x")
    return "\n".join(lines)


def engine_cuda_table() -> str:
    rows = json.loads((HERE / "engine_cuda.json").read_text())
    methods = ["hqray-auto", "hqray-folded", "hqray-statevector", "default.qubit-broadcast"]
    cells: dict[tuple, dict] = {}
    for row in rows:
        cells.setdefault((row["n_qubits"], row["layers"], row["batch"]), {})[row["method"]] = row

    def show(group: dict, method: str) -> str:
        row = group.get(method)
        if row is None:
            return "-"
        if row.get("error"):
            return "out of memory" if "OutOfMemory" in row["error"] else "error"
        return f"{row['samples_per_s']:,.0f}{'*' if row.get('extrapolated_from') else ''}"

    lines = ["| n | L | B | auto strategy | " + " | ".join(methods) + " | auto vs default.qubit | auto GPU MB |",
             "|---" * (len(methods) + 6) + "|"]
    for (n, layers, batch), group in cells.items():
        auto, reference = group["hqray-auto"], group.get("default.qubit-broadcast", {})
        ratio = (f"{auto['samples_per_s'] / reference['samples_per_s']:.1f}x"
                 if reference and not reference.get("error") else "-")
        lines.append(f"| {n} | {layers} | {batch:,} | {auto['strategy']} | "
                     + " | ".join(show(group, m) for m in methods) + f" | {ratio} | {auto['peak_mb']:,.0f} |")
    return "\n".join(lines)


def predict_tables(name: str = "predict.json") -> str:
    recorded = json.loads((HERE / name).read_text())
    lines = ["| features | rows | method | rows/s | seconds | start-up s | scoring s | rows/s once scoring "
             "| driver peak MB | actor peak MB (each) |", "|---" * 10 + "|"]
    for r in recorded["rows"]:
        actors = ", ".join(f"{mb:,.0f}" for mb in r["actor_peak_mb"]) or "-"
        steady = f"{r['scoring_rows_per_s']:,.0f}" if "scoring_rows_per_s" in r else "-"
        lines.append(f"| {r['width']} | {r['rows']:,} | {r['method']} | {r['rows_per_s']:,.0f} | {r['seconds']} | "
                     f"{r.get('startup_seconds', '-')} | {r.get('scoring_seconds', '-')} | {steady} | "
                     f"{r['driver_peak_mb']:,.0f} | {actors} |")
    lines += ["", "| features | rows | 2 actors / 1 actor, end to end | once scoring | 2 actors / in-process |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['width']} | {r['rows']:,} | {r['two_vs_one_actor']}x | "
              f"{r.get('two_vs_one_actor_once_scoring', '-')}x | {r['two_actors_vs_in_process']}x |"
              for r in recorded["ratios"]]
    return "\n".join(lines)


if __name__ == "__main__":
    print("## engine\n\n" + engine_tables() + "\n\n## engine on CUDA\n\n" + engine_cuda_table()
          + "\n\n## train\n\n" + train_table() + "\n\n## pool\n\n" + pool_tables() + "\n\n## kernel\n\n"
          + kernel_table() + "\n\n## serve\n\n" + serve_table() + "\n\n## predict\n\n" + predict_tables())
