"""fastsoftmax.dask against the naive Dask expression, on a local dask.distributed cluster.

    pip install '.[dask]'
    python bench/bench_dask.py                      # 128 MB float32, 2 workers x 1 thread
    python bench/bench_dask.py --rows 256 --cols 131072 --col-chunk 16384 --dtype float64

The input (random logits, ``--rows`` x ``--cols``, chunks ``--row-chunk`` x ``--col-chunk``) is
generated and persisted on the workers first; each timing is then ``persist`` + ``wait`` of the
result (computed on the workers, not sent back), for softmax, log_softmax and logsumexp along
axis 1, which spans several chunks. The naive expressions are

    softmax      e = da.exp(x - x.max(axis, keepdims=True)); e / e.sum(axis, keepdims=True)
    log_softmax  s = x - x.max(axis, keepdims=True); s - da.log(da.exp(s).sum(axis, keepdims=True))
    logsumexp    m = x.max(axis, keepdims=True); (m + da.log(da.exp(x - m).sum(axis, keepdims=True))).squeeze(axis)

Graph size: the number of tasks of the result's graph as built (``len(y.__dask_graph__())``, the
persisted input counted as its blocks) and after ``dask.optimize`` (blockwise fusion). The last
columns give each result's maximum error in ulp against fastsoftmax on the NumPy array, for the
first ``--check-rows`` rows.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np


def naive(op, x, axis):
    import dask.array as da
    if op == "softmax":
        e = da.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    if op == "log_softmax":
        s = x - x.max(axis=axis, keepdims=True)
        return s - da.log(da.exp(s).sum(axis=axis, keepdims=True))
    m = x.max(axis=axis, keepdims=True)
    return (m + da.log(da.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis=axis)


def forget(client, y, keep, timeout=30.0):
    """Wait until the scheduler holds none of y's keys but those of ``keep`` (the input): results
    of an earlier, identical graph would make the timing meaningless."""
    keys = {str(k) for k in y.__dask_graph__()} - {str(k) for k in keep.__dask_graph__()}

    def held(dask_scheduler):
        return sum(str(k) in keys for k in list(dask_scheduler.tasks))

    deadline = time.perf_counter() + timeout
    while client.run_on_scheduler(held) and time.perf_counter() < deadline:
        time.sleep(0.05)


def ulp_error(got, exp):
    got, exp = np.asarray(got), np.asarray(exp)
    fin = np.isfinite(exp) & (np.abs(exp) >= np.finfo(exp.dtype).tiny)
    unit = np.spacing(np.abs(exp[fin])).astype(np.float64)
    return float(np.max(np.abs(got[fin].astype(np.float64) - exp[fin].astype(np.float64)) / unit))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--cols", type=int, default=65536)
    p.add_argument("--row-chunk", type=int, default=256)
    p.add_argument("--col-chunk", type=int, default=8192)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads-per-worker", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ops", default="softmax,log_softmax,logsumexp")
    p.add_argument("--check-rows", type=int, default=8)
    args = p.parse_args(argv)

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fastsoftmax
    import fastsoftmax.dask as fsd

    dtype = np.dtype(args.dtype)
    shape = (args.rows, args.cols)
    chunks = (args.row_chunk, args.col_chunk)
    nbytes = args.rows * args.cols * dtype.itemsize
    chunk_bytes = args.row_chunk * args.col_chunk * dtype.itemsize
    axis = 1
    with LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                      processes=True, dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        x = da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=dtype) * 4
        x = x.astype(dtype).persist()
        wait(x)
        sample = x[:args.check_rows].compute()
        print(f"# fastsoftmax.dask vs naive dask, {args.dtype} {shape[0]}x{shape[1]} "
              f"({nbytes / 2**20:.0f} MiB), chunks {chunks[0]}x{chunks[1]} ({chunk_bytes / 2**20:.0f} MiB, "
              f"{x.numblocks[0]}x{x.numblocks[1]} blocks; axis {axis} spans {x.numblocks[1]} chunks)")
        print(f"# LocalCluster: {args.workers} worker processes x {args.threads_per_worker} thread; "
              f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
              f"dask {dask.__version__}, numpy {np.__version__}, fastsoftmax {fastsoftmax.__version__}")
        print(f"# time: persist + wait of the result (no earlier result held), median and min of "
              f"{args.repeats} runs, the two implementations interleaved")
        print()
        print("| op | implementation | time median s | time min s | GB/s (input, median) | tasks | tasks optimized | max ulp vs fastsoftmax |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for op in args.ops.split(","):
            exp = getattr(fastsoftmax, op)(sample, axis=axis)
            impls = {"fastsoftmax.dask": lambda: getattr(fsd, op)(x, axis=axis),
                     "naive dask": lambda: naive(op, x, axis)}
            info, times = {}, {name: [] for name in impls}
            for name, build in impls.items():
                y = build()
                info[name] = (len(y.__dask_graph__()), len(dask.optimize(y)[0].__dask_graph__()),
                              ulp_error(y[:args.check_rows].compute(), exp))
                forget(client, y, x)
            for _ in range(args.repeats):          # interleaved, so that load changes hit both alike
                for name, build in impls.items():
                    y = build()
                    forget(client, y, x)           # nothing of this graph may be left from a previous run
                    t0 = time.perf_counter()
                    yp = y.persist()
                    wait(yp)
                    times[name].append(time.perf_counter() - t0)
                    del yp
                    forget(client, y, x)
            for name in impls:
                med, best = statistics.median(times[name]), min(times[name])
                tasks, tasks_opt, err = info[name]
                print(f"| {op} | {name} | {med:.3f} | {best:.3f} | {nbytes / med / 1e9:.2f} | "
                      f"{tasks} | {tasks_opt} | {err:.1f} |")
                sys.stdout.flush()
        client.cancel(x)
    return 0


if __name__ == "__main__":
    sys.exit(main())
