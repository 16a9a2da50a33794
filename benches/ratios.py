#!/usr/bin/env python3
"""Prints the median of each criterion benchmark and its ratio to the in-run baseline.

Run after `cargo bench -p benches --bench hot_path --bench loopback`, from the workspace
root (it reads target/criterion/*/*/new/estimates.json).
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
GROUPS = {
    "hot_path": ("add_authorization", ["noop", "add_authorization", "bearer_auth",
                                       "bearer_auth_with_retry", "naive_mutex", "naive_rwlock"]),
    "hot_path_contended": ("add_authorization", ["noop", "add_authorization", "bearer_auth",
                                                 "bearer_auth_with_retry", "naive_mutex",
                                                 "naive_rwlock"]),
    "loopback": ("bare", ["bare", "bearer_auth"]),
}


def median_ns(group, bench):
    path = ROOT / group / bench / "new" / "estimates.json"
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def main():
    print("| benchmark | median | ratio to baseline |")
    print("|---|---:|---:|")
    for group, (baseline, benches) in GROUPS.items():
        try:
            base = median_ns(group, baseline)
        except FileNotFoundError:
            continue
        for bench in benches:
            ns = median_ns(group, bench)
            if group == "loopback":
                # Throughput: requests per second, ratio of throughputs.
                print(f"| {group}/{bench} | {1e9 / ns:,.0f} req/s | {base / ns:.3f}x |")
            else:
                print(f"| {group}/{bench} | {ns:.1f} ns | {ns / base:.2f}x |")


if __name__ == "__main__":
    main()
