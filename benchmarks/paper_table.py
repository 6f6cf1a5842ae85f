"""Sets hqray's leaderboards on the benchmark paper's instances beside the paper's test accuracy.

Run from the repository root after the studies in tune_spaces/benchmark/paper/:
``python benchmarks/paper_table.py`` prints the markdown table of benchmarks/RESULTS.md.

A row is "reproduced" when hqray's 5-fold mean lies within one spread of the paper's mean,
the spread being the larger of hqray's fold standard deviation and the paper's standard
deviation over its 5 refits; otherwise the row says which side is ahead and by how much.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent
STUDIES = {"linearly_separable_10d": "paper_linearly_separable_10d",
           "hidden_manifold-6manifold-10d": "paper_hidden_manifold_10d",
           "two_curves-5degree-0.1offset-10d": "paper_two_curves_10d"}
FAMILIES = {"CircuitCentricClassifier": "circuit_centric", "DataReuploadingClassifier": "data_reuploading",
            "DressedQuantumCircuitClassifier": "dressed_quantum_circuit",
            "IQPVariationalClassifier": "iqp_variational", "SeparableVariationalClassifier": "separable_variational",
            "TreeTensorClassifier": "tree_tensor", "IQPKernelClassifier": "iqp_kernel",
            "ProjectedQuantumKernel": "projected_kernel", "SeparableKernelClassifier": "separable_kernel",
            "QuantumKitchenSinks": "quantum_kitchen_sinks", "MLPClassifier": "baseline:mlp", "SVC": "baseline:svc"}


def verdict(ours: float, our_std: float, theirs: float, their_std: float) -> str:
    spread = max(our_std, their_std)
    gap = ours - theirs
    if abs(gap) <= spread:
        return "reproduced"
    return f"hqray {'higher' if gap > 0 else 'lower'} by {abs(gap):.2f}"


def rows() -> list[str]:
    paper = json.loads((ROOT / "paper_data" / "paper_results.json").read_text())["instances"]
    lines = []
    for instance, study in STUDIES.items():
        board = pd.read_csv(ROOT / "studies" / study / "leaderboard.csv").set_index("model")
        for model, family in FAMILIES.items():
            if model not in paper[instance] or family not in board.index:
                continue
            theirs = paper[instance][model]
            ours = board.loc[family]
            lines.append(f"| {instance} | `{family}` | {ours['accuracy']:.3f} ± {ours['accuracy_std']:.3f} | "
                         f"{theirs['mean']:.3f} ± {theirs['std']:.3f} | "
                         f"{verdict(ours['accuracy'], ours['accuracy_std'], theirs['mean'], theirs['std'])} |")
    return lines


if __name__ == "__main__":
    print("| instance | family | hqray accuracy (5-fold) | paper test accuracy (5 refits) | verdict |")
    print("|---|---|---|---|---|")
    print("\n".join(rows()))
