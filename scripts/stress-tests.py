#!/usr/bin/env python3
"""Runs the whole test suite N times with fresh seeds and reports every failure with its seed.

Each run is `dotnet test` as in the README (NUnit draws a new random seed per run; every test prints
the seed it used, so a failure can be replayed with GRPO_TEST_SEED=SEED). Besides failures, it reads
the "worst relative error E (bound B)" and "worst error / scale E (bound B)" lines that
tests/Grpo.Native.Tests/Support/Compare.cs prints
and lists the comparisons that came closest to their bound over all runs: a tolerance whose worst
E/B creeps towards 1 is one to re-derive before it fails.

Outside CI (20 runs take about an hour on 2 cores):
    python3 scripts/stress-tests.py --runs 20 [--filter EXPR] [--out DIR]
Exit status: 0 when every run passed, 1 otherwise.
"""

import argparse
import html
import os
import re
import subprocess
import sys
import time
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = re.compile(r'<UnitTestResult [^>]*?testName="([^"]*)"[^>]*?outcome="([^"]*)"[^>]*?(?:/>|>(.*?)</UnitTestResult>)', re.S)
STDOUT = re.compile(r"<StdOut>(.*?)</StdOut>", re.S)
MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)
SEED = re.compile(r"random seed (-?\d+)")
MARGIN = re.compile(r"^(.*): worst (?:relative error|error / scale) (\S+) \(bound (\S+)\)", re.M)


def parse(trx_path):
    """(test name, outcome, seeds, message, [(what, worst, bound)]) for every test of one TRX file."""
    text = open(trx_path, encoding="utf-8").read()
    for name, outcome, body in RESULT.findall(text):
        out = html.unescape("".join(STDOUT.findall(body)))
        message = html.unescape("".join(MESSAGE.findall(body))).strip()
        margins = [(what, float(worst), float(bound)) for what, worst, bound in MARGIN.findall(out)]
        yield html.unescape(name), outcome, SEED.findall(out), message, margins


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--filter", help="dotnet test --filter expression (default: the whole suite)")
    parser.add_argument("--out", default=os.path.join(REPO, "artifacts", "stress"))
    parser.add_argument("--closest", type=int, default=15, help="how many closest-to-bound comparisons to list")
    args = parser.parse_args()

    build = subprocess.run(["dotnet", "build", "Grpo.Native.sln", "-c", "Release"], cwd=REPO,
                           stdout=subprocess.DEVNULL)
    if build.returncode != 0:
        sys.exit("build failed")

    env = dict(os.environ)
    env.pop("GRPO_TEST_SEED", None)  # fresh seeds: never a replayed one
    failures, closest, passed_runs = [], {}, 0
    for run in range(1, args.runs + 1):
        folder = os.path.join(args.out, f"run{run:02d}")
        command = ["dotnet", "test", "Grpo.Native.sln", "-c", "Release", "--no-build",
                   "--logger", f"trx;LogFileName=run{run:02d}.trx", "--results-directory", folder]
        if args.filter:
            command += ["--filter", args.filter]
        started = time.time()
        code = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        trx = os.path.join(folder, f"run{run:02d}.trx")
        counts = defaultdict(int)
        run_failures = []
        if os.path.exists(trx):
            for name, outcome, seeds, message, margins in parse(trx):
                counts[outcome] += 1
                if outcome not in ("Passed", "NotExecuted"):
                    run_failures.append((run, name, seeds, message.splitlines()[0] if message else outcome))
                for what, worst, bound in margins:
                    if outcome == "Passed" and worst > bound:
                        continue  # a test of the comparison itself, which expects it to fail
                    key = (name, what)
                    ratio = 0.0 if worst == 0 else worst / bound if bound > 0 else float("inf")
                    if key not in closest or ratio > closest[key][0]:
                        closest[key] = (ratio, worst, bound, run, seeds)
        else:
            run_failures.append((run, "(no results)", [], f"dotnet test exited {code}"))
        if code != 0 and not run_failures:
            run_failures.append((run, "(test host)", [], f"dotnet test exited {code}"))
        failures += run_failures
        passed_runs += not run_failures
        print(f"run {run:2d}: {counts['Passed']} passed, {len(run_failures)} failed, {time.time() - started:.0f} s", flush=True)
        for _, name, seeds, message in run_failures:
            print(f"    FAILED {name} seed {','.join(seeds) or '?'}: {message}", flush=True)

    print(f"\n{passed_runs} of {args.runs} runs passed; {len(failures)} failures")
    for run, name, seeds, message in failures:
        print(f"  run {run}: {name} (GRPO_TEST_SEED={','.join(seeds) or '?'}): {message}")
    print(f"\nclosest to their bound over all runs (worst error / bound):")
    for (name, what), (ratio, worst, bound, run, seeds) in sorted(closest.items(), key=lambda kv: -kv[1][0])[:args.closest]:
        print(f"  {ratio:5.2f}  {worst:.2e} / {bound:.0e}  {name} — {what} (run {run}, seed {','.join(seeds)})")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
