#!/usr/bin/env bash
# The whole test suite, as CI runs it: notebooks clean, library exported from them, notebooks small,
# pyflakes, every notebook run by nbdev_test, then pytest (which ends the run with its pass/fail count).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
# Transparent huge pages for malloc: torch on CPU otherwise spends as much time in page faults (fresh 4 KB pages for
# every large activation) as in arithmetic. Same results, about a third less time; ignored where unsupported.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1"
failed=()
snapshot() { find nbs iwildcam_nb -type f \( -name '*.ipynb' -o -name '*.py' \) -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 md5sum; }

echo "== nbdev_clean leaves notebooks unchanged"
before=$(snapshot); nbdev_clean; after=$(snapshot)
[ "$before" == "$after" ] || { diff <(echo "$before") <(echo "$after"); failed+=("nbdev_clean changed notebooks: run nbdev_clean and commit"); }

echo "== nbdev_export leaves the library unchanged"
before=$(snapshot); nbdev_export; after=$(snapshot)
[ "$before" == "$after" ] || { diff <(echo "$before") <(echo "$after"); failed+=("iwildcam_nb/ is not what nbdev_export makes of nbs/: run nbdev_export and commit"); }

echo "== notebooks under 500 KB"
big=$(find nbs -name '*.ipynb' -size +500k)
[ -z "$big" ] || failed+=("notebooks over 500 KB: $big")

echo "== pyflakes iwildcam_nb tests benchmarks tools"
pyflakes iwildcam_nb tests benchmarks tools || failed+=("pyflakes")

echo "== nbdev_test"
out=$(nbdev_test --n_workers 2 --timing 2>&1); rc=$?
echo "$out"
n_nbs=$(find nbs -name '[!_]*.ipynb' -not -path '*/.ipynb_checkpoints/*' | wc -l)
echo "nbdev_test ran over $n_nbs notebooks"
if [ $rc -ne 0 ]; then failed+=("nbdev_test"); fi
if echo "$out" | grep -q "No files were eligible" || [ "$n_nbs" -eq 0 ]; then failed+=("nbdev_test found no notebooks"); fi

echo "== pytest"
# Two pytest-xdist workers, each given whole test files (--dist loadscope): a module-scoped fixture (a trained model,
# the demo) is made once, and the tests of one file never run at the same time.
# Not --dist loadgroup: with pytest 9.2 and pytest-xdist 3.8 it silently ignores xdist_group (pytest-xdist#1386).
pytest tests -q -rs -n "${PYTEST_WORKERS:-2}" --dist loadscope || failed+=("pytest")

if [ ${#failed[@]} -ne 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"; exit 1
fi
echo "ALL CHECKS PASSED"
