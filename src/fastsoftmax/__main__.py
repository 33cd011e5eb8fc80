"""python -m fastsoftmax: configuration, the documentation's example, and a quick timing against NumPy."""
import timeit

import numpy as np

import fastsoftmax


def _numpy_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _best_seconds(f, budget=0.4):
    t = timeit.Timer(f)
    n, _ = t.autorange()
    reps = max(3, int(budget / max(t.timeit(n) / n, 1e-9) / n))
    return min(t.repeat(repeat=5, number=max(1, min(n, reps)))) / max(1, min(n, reps))


def main():
    print("fastsoftmax configuration")
    fastsoftmax.show_config()

    print("\nExample: which album does the photo belong to?")
    albums = ["beach", "mountains", "city", "forest", "indoors"]
    scores = np.array([4.1, 1.0, 2.3, -0.5, 0.2])
    p = fastsoftmax.softmax(scores)
    for i in np.argsort(-p):
        print(f"  {albums[i]:<10} {100 * p[i]:5.1f} %")
    print(f"  sum = {p.sum():.6f}")

    print("\nQuick timing, float32 softmax over the last axis (best of 5, default threads)")
    print(f"  {'shape':<16}{'numpy':>12}{'fastsoftmax':>14}{'speed-up':>10}")
    rng = np.random.default_rng(0)
    for shape in [(1, 10), (256, 1000), (64, 32000)]:
        x = rng.standard_normal(shape, dtype=np.float32) * 3
        out = np.empty_like(x)
        t_np = _best_seconds(lambda: _numpy_softmax(x))
        t_fs = _best_seconds(lambda: fastsoftmax.softmax(x, axis=-1, out=out))
        print(f"  {str(shape):<16}{t_np * 1e6:>10.1f}us{t_fs * 1e6:>12.1f}us{t_np / t_fs:>9.1f}x")


if __name__ == "__main__":
    main()
