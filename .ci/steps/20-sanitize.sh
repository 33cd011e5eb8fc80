#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (a separate build in a temporary
# copy of the repository; see scripts/sanitize.sh). Any sanitizer report fails the step.
set -euo pipefail
bash scripts/sanitize.sh
