"""csrc/kernels/INDEX, the spelled-out per-ISA kernel names, matches the sources it is generated from."""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "kernel_index.py"

pytestmark = pytest.mark.skipif(
    not (SCRIPT.exists() and (ROOT / "csrc" / "kernels" / "template.h").exists()),
    reason="needs the source tree (scripts/ and csrc/); an sdist or wheel test run has neither",
)


@pytest.fixture(scope="module")
def kernel_index():
    spec = importlib.util.spec_from_file_location("kernel_index", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_index_is_up_to_date(kernel_index):
    index = ROOT / kernel_index.INDEX
    assert index.exists(), f"{kernel_index.INDEX} is missing: run python scripts/kernel_index.py"
    assert index.read_text() == kernel_index.generate(ROOT), (
        f"{kernel_index.INDEX} is out of date (template.h or kernels.inc changed): run python scripts/kernel_index.py"
    )


def test_index_lists_every_kernel_of_every_isa(kernel_index):
    names = {line.split()[0] for line in kernel_index.generate(ROOT).splitlines() if line and line[0] != "#"}
    for isa in kernel_index.isas(ROOT):
        for kernel in ("max_rows_f32", "expsum_store_rows_f64", "col_logshift_f64", "kernel_set"):
            assert f"{kernel}_{isa}" in names, f"{kernel}_{isa} missing from the index"
