"""The benchmark cases and the speed targets from the core issue."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple
    axis: int
    what: str
    data: str = "normal3"  # "normal3": normal * 3 (logits-like); "uniform80": uniform(-80, 80), a tenth subnormal

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
    Case("256x1000-u80", (256, 1000), -1, "wide logits: a tenth of the outputs subnormal", "uniform80"),
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

# The float32 speed targets (float32-lanes issue), one thread:
# (label, op, case, against, target, avx2_target, avx2_machine_target) with against = "peer" (the faster
# of onnxruntime and torch; ratio peer time / fastsoftmax time, the target is a minimum), "copyto"
# (fastsoftmax / np.copyto, a maximum) or "case:NAME" (fastsoftmax on this case / fastsoftmax on NAME, a
# maximum). target: the AVX-512 kernel on an AVX-512 machine; avx2_target: the same rows measured again
# with the AVX2 kernel against torch held to AVX2 (ORT cannot be held to an ISA); avx2_machine_target:
# the AVX2 kernel on a machine without AVX-512, against ORT's and torch's AVX2 kernels.
TARGETS = [
    ("softmax (256,1000)", "softmax", "256x1000", "peer", 1.0, 1.5, 1.0),
    ("softmax (1,128256)", "softmax", "1x128256", "peer", 1.0, 1.5, 1.0),
    ("softmax (24576,128)", "softmax", "24576x128", "peer", 1.0, 1.5, 1.0),
    ("log_softmax (256,1000)", "log_softmax", "256x1000", "peer", 1.0, 1.5, 1.0),
    ("logsumexp (256,1000)", "logsumexp", "256x1000", "peer", 2.0, 2.0, 1.5),
    ("uniform(-80,80) / normal*3, softmax (256,1000)", "softmax", "256x1000-u80", "case:256x1000", 1.3, 1.3, 1.3),
    ("softmax (8,21,256,256) axis=1 / np.copyto", "softmax", "8x21x256x256@1", "copyto", 2.0, 2.0, 2.0),
]


def target_configs():
    """The (case, dtype, op, threads) configurations --targets measures."""
    seen = []
    for _, op, case, against, *_ in TARGETS:
        for c in [case] + ([against[5:]] if against.startswith("case:") else []):
            key = (c, "float32", op, 1)
            if key not in seen:
                seen.append(key)
    return seen
