#!/usr/bin/env bash
# The whole test suite, as CI runs it: notebooks clean, library exported from them, notebooks small,
# pyflakes, every notebook run by nbdev_test, then pytest (which ends the run with its pass/fail count).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
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
pytest tests -q -rs || failed+=("pytest")

if [ ${#failed[@]} -ne 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"; exit 1
fi
echo "ALL CHECKS PASSED"
