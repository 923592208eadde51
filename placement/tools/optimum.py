#!/usr/bin/env python3
"""The exact least movement of one layout change, to measure the rebalance against.

`placement::movement_lower_bound` is a relaxation: it counts loads, not rows, so it can sit
below what any table reaches. This solves the change exactly, as an integer program over every
slot (HiGHS, `pip install highspy numpy`), for the same definition of a valid table: every
prefix of every row as spread as the tier allows (the fullest zone holds the water-filling
maximum over zones, and in each zone the fullest node the maximum over its nodes), every core at
most once per row, and every prefix load of every core within the targets
(`placement::valid_targets`). It minimises the slots whose core differs from the previous table.

    cargo run --release -p placement --example export_change -- 3 2 4 remove-core 256 c.json
    python3 placement/tools/optimum.py c.json --time-limit 600

With `--check` it exits 1 unless the lower bound is at most the proven optimum (CI runs this on
a small change, so the bound is checked against an exact solver, not only against tables).

It prints the rebalance's moves, the lower bound, and the optimum (or, at the time limit, the
best table found and the solver's proof that none moves less than its dual bound). Sizes: P = 256
on 24 cores solves in under 3 minutes; P = 1024 reaches a 0.2 % gap in 20 minutes.

The node rule is written as "every node holds at most ⌈k / m⌉ of the zone's k fragments" (m nodes
in the zone), which equals the water-filling rule only while no node is too small for its part;
the tool refuses layouts where that does not hold.
"""

import argparse
import json
import sys

import highspy
import numpy as np


def waterfill_max(caps, k):
    """The fewest fragments the fullest domain holds when k go to domains of `caps` cores."""
    for level in range(k + 1):
        if sum(min(c, level) for c in caps) >= k:
            return level
    raise ValueError("more fragments than cores")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("change", help="JSON written by the export_change example")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless lower bound <= optimum <= rebalance (needs the optimum proven)",
    )
    args = parser.parse_args()
    d = json.load(open(args.change))
    pgs, depth, members = d["pgs"], d["depth"], d["members"]
    old, ours, lo, hi = d["old"], d["new"], d["lo"], d["hi"]
    n = len(members)
    zones = sorted({m[0] for m in members})
    zone_cores = {z: [c for c in range(n) if members[c][0] == z] for z in zones}
    zone_nodes = {z: sorted({members[c][1] for c in zone_cores[z]}) for z in zones}
    node_cores = {}
    for c, (_, node) in enumerate(members):
        node_cores.setdefault(node, []).append(c)
    zone_caps = [len(zone_cores[z]) for z in zones]
    for z in zones:
        caps = [len(node_cores[k]) for k in zone_nodes[z]]
        most = waterfill_max(zone_caps, depth)
        if most > len(caps) * min(caps):
            sys.exit(f"zone {z}: nodes of {caps} cores can fill up: the node rule is not linear here")

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", args.time_limit)
    index = {}
    cost = []
    for p in range(pgs):
        for r in range(depth):
            for c in range(n):
                index[p, r, c] = len(cost)
                cost.append(0.0 if old[p][r] == c else 1.0)
    count = len(cost)
    columns = np.arange(count, dtype=np.int32)
    h.addVars(count, np.zeros(count), np.ones(count))
    h.changeColsCost(count, columns, np.array(cost))
    h.changeColsIntegrality(count, columns, np.array([highspy.HighsVarType.kInteger] * count))

    def row(coefficients, low, high):
        keys = np.array(list(coefficients.keys()), dtype=np.int32)
        values = np.array(list(coefficients.values()), dtype=float)
        h.addRow(low, high, len(keys), keys, values)

    for p in range(pgs):
        for r in range(depth):
            row({index[p, r, c]: 1 for c in range(n)}, 1, 1)
        for c in range(n):
            row({index[p, r, c]: 1 for r in range(depth)}, 0, 1)
        for w in range(1, depth + 1):
            top = waterfill_max(zone_caps, w)
            for z in zones:
                in_zone = {index[p, r, c]: 1 for c in zone_cores[z] for r in range(w)}
                row(in_zone, 0, top)
                m = len(zone_nodes[z])
                for node in zone_nodes[z]:
                    # m × (node's count) − (zone's count) ≤ m − 1, i.e. node ≤ ⌈zone / m⌉.
                    coefficients = {k: -1 for k in in_zone}
                    for c in node_cores[node]:
                        for r in range(w):
                            coefficients[index[p, r, c]] += m
                    row(coefficients, -highspy.kHighsInf, m - 1)
    for c in range(n):
        for w in range(1, depth + 1):
            cells = {index[p, r, c]: 1 for p in range(pgs) for r in range(w)}
            row(cells, lo[w][c], hi[w][c])

    # The rebalanced table is a feasible start.
    start = np.zeros(count)
    for p in range(pgs):
        for r in range(depth):
            start[index[p, r, ours[p][r]]] = 1
    solution = highspy.HighsSolution()
    solution.col_value = list(start)
    solution.value_valid = True
    h.setSolution(solution)
    h.run()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    best, proven = info.objective_function_value, info.mip_dual_bound
    moves = d["moves"]
    print(f"rebalance: {moves} moves; lower bound (placement): {d['lower_bound']}")
    print(f"integer program ({status}): best table {best:.0f} moves, none below {proven:.1f}")
    print(f"rebalance / optimum: at most {moves / max(proven, 1):.3f}, at least {moves / max(best, 1):.3f}")
    if args.check:
        # The bound must not exceed what the solver proves no table beats, and the rebalanced
        # table (the solver's start) must not beat the optimum.
        optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        sound = d["lower_bound"] <= round(proven) and round(best) <= moves
        if not (optimal and sound):
            sys.exit("check failed: " + ("" if optimal else "no proven optimum; ") + ("" if sound else "bound above the optimum"))


if __name__ == "__main__":
    main()
