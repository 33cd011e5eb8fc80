"""The benchmark cases and the speed targets from the core issue."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple
    axis: int
    what: str

    @property
    def size(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def label(self):
        s = "(" + ",".join(str(d) for d in self.shape) + ")"
        return s if self.axis in (-1, len(self.shape) - 1) else f"{s} axis={self.axis}"


FULL = [
    Case("1x10", (1, 10), -1, "tiny: call overhead"),
    Case("1x1000", (1, 1000), -1, "tiny: call overhead"),
    Case("256x1000", (256, 1000), -1, "classifier batch"),
    Case("8x32000", (8, 32000), -1, "vocabulary rows"),
    Case("1x128256", (1, 128256), -1, "vocabulary row (Llama 3)"),
    Case("64x50257", (64, 50257), -1, "vocabulary rows (GPT-2)"),
    Case("24576x128", (24576, 128), -1, "attention rows"),
    Case("4096x32000", (4096, 32000), -1, "out of cache"),
    Case("1x16777216", (1, 1 << 24), -1, "one long row"),
    Case("8x21x256x256@1", (8, 21, 256, 256), 1, "axis=1 (segmentation logits)"),
]

# --quick: three small cases that still reach every code path (tiny, rows, axis=1)
QUICK = [
    Case("1x10", (1, 10), -1, "tiny: call overhead"),
    Case("256x1000", (256, 1000), -1, "classifier batch"),
    Case("8x21x32x64@1", (8, 21, 32, 64), 1, "axis=1 (small)"),
]

BY_NAME = {c.name: c for c in FULL + QUICK}

# (label, op, case, dtype, threads, compared-with candidate or None for the absolute time)
TARGETS = [
    ("softmax (256,1000) vs ORT (~0.15-0.20 ms)", "softmax", "256x1000", "float32", 1, "onnxruntime"),
    ("softmax (1,128256)", "softmax", "1x128256", "float32", 1, "copyto"),
    ("softmax (24576,128)", "softmax", "24576x128", "float32", 1, "copyto"),
    ("softmax (4096,32000) vs np.copyto", "softmax", "4096x32000", "float32", 1, "copyto"),
    ("softmax (8,21,256,256) axis=1 vs np.copyto", "softmax", "8x21x256x256@1", "float32", 1, "copyto"),
    ("float64 softmax (256,1000) vs torch", "softmax", "256x1000", "float64", 1, "torch"),
    ("log_softmax (256,1000)", "log_softmax", "256x1000", "float32", 1, "onnxruntime"),
    ("logsumexp (256,1000)", "logsumexp", "256x1000", "float32", 1, "torch"),
    ("softmax (1,10) per-call time", "softmax", "1x10", "float32", 1, None),
]


def target_configs():
    """The (case, dtype, op, threads) configurations --targets measures."""
    seen = []
    for _, op, case, dtype, threads, _ in TARGETS:
        key = (case, dtype, op, threads)
        if key not in seen:
            seen.append(key)
    return seen
