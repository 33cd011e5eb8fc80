#!/usr/bin/env python3
"""Mutation fuzzing without atheris, for runs under the sanitizers.

Under a sanitized build, gcc's libasan provides the coverage callbacks instead of libFuzzer, so
atheris is not coverage-guided there. This driver replays every seed, then runs random mutations
of the seeds (byte flips, insertions, deletions, splices) through the same target and oracle for
a fixed time. A sanitizer report aborts the process; an oracle failure is printed with the input
in hex and makes the exit status 1.

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        PYTHONPATH=<sanitized copy>/src python fuzz/mutate.py 600 fuzz/corpus [more seed dirs]
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_target  # noqa: E402
import oracle  # noqa: E402


def mutate(rng, data, seeds):
    d = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if d and r < 0.4:
            d[rng.randrange(len(d))] = rng.getrandbits(8)
        elif r < 0.7:
            d.insert(rng.randint(0, len(d)), rng.getrandbits(8))
        elif d and r < 0.85:
            del d[rng.randrange(len(d))]
        else:
            other = rng.choice(seeds)
            i = rng.randint(0, len(d))
            d[i:i] = other[:rng.randint(0, len(other))]
    return bytes(d)


def main():
    seconds = float(sys.argv[1])
    seeds = []
    for d in sys.argv[2:]:
        seeds += [open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))]
    if not seeds:
        seeds = [b""]
    failures = 0

    def run(data):
        nonlocal failures
        try:
            fuzz_target.one_input(data)
        except oracle.OracleError as e:
            failures += 1
            print(f"ORACLE FAILURE input={data.hex()}\n{e}", flush=True)

    for s in seeds:
        run(s)
    rng = random.Random(int(os.environ.get("FUZZ_SEED", time.time())))
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        run(mutate(rng, rng.choice(seeds), seeds))
        n += 1
    print(f"{len(seeds)} seeds replayed, {n} mutated inputs run, {failures} oracle failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
