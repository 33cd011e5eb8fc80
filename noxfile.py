"""The test matrix: each supported Python with the NumPy it is tested on (run by CI, .ci/steps/45-matrix.sh).

    nox                      # every session
    nox -s "tests-3.10"      # one interpreter
    nox -l                   # the list

Each session is what a user does in a fresh clone: the README's test command,
``pip install '.[test]' && python -m pytest``, in a new virtual environment (the wheel is built
against NumPy 2.x by pip's isolated build, as release wheels are), with the NumPy of that row.
The suite runs from a copy of the tree without ``src/`` and ``setup.py``, so only the installed package
can be imported. nox finds the interpreters as ``python3.10`` ... on PATH.
"""
import pathlib
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

ROOT = pathlib.Path(__file__).resolve().parent

# Python and the NumPy requirement of each row. 3.10 keeps the oldest supported NumPy (the
# extension is built against NumPy 2.x and must load on 1.26); 3.13 gets the newest NumPy < 3.
MATRIX = {
    "3.10": "numpy==1.26.*",
    "3.11": "numpy>=2,<3",
    "3.12": "numpy>=2,<3",
    "3.13": "numpy>=2,<3",
}


@nox.session(python=list(MATRIX))
def tests(session):
    """The README's test command on one Python and NumPy; pytest arguments after ``--``."""
    numpy = MATRIX[session.python]
    # --only-binary: NumPy, SciPy and ml_dtypes from wheels, never compiled here
    session.install("--only-binary", "numpy,scipy,ml_dtypes", ".[test]", numpy)
    session.run("python", "-c", "import sys, numpy, scipy, fastsoftmax; "
                "print('python', sys.version.split()[0], '| numpy', numpy.__version__, '| scipy', scipy.__version__, "
                "'| fastsoftmax', fastsoftmax.__version__, fastsoftmax.get_config()['isa'])")
    # the tree without the package (tests/ reads fuzz/, csrc/, scripts/, README.md, .ci/run and
    # pyproject.toml's pytest settings beside it), so that only the installed package can be imported
    run = pathlib.Path(session.create_tmp()) / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(ROOT, run, ignore=shutil.ignore_patterns(
        "src", "setup.py", "build", "dist", ".git", ".nox", ".venv*", "__pycache__", "*.so", ".hypothesis"))
    session.chdir(run)
    # tests/test_installed.py: the package must come from the venv's site-packages, with its stubs
    session.env["FASTSOFTMAX_EXPECT_INSTALLED"] = "1"
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *session.posargs)
