"""Install smoke tests: the package imports cleanly, its console script is on PATH, the README is current."""
import subprocess, sys
from conftest import ROOT

sys.path.insert(0, str(ROOT/'tools'))
from readme_commands import readme_commands
import make_readme

def test_import_is_light():
    "Importing the package and its core must not pull in torch or fastai (the CLI must start fast)."
    code = "import sys, iwildcam_nb, iwildcam_nb.core; print('torch' in sys.modules, 'fastai' in sys.modules)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ['False', 'False']

def test_readme_has_both_commands():
    cmds = readme_commands()
    assert set(cmds) == {'demo', 'test'}
    assert 'iwildcam-nb demo' in cmds['demo'] and 'tools/test.sh' in cmds['test']
    assert 'readme_commands.py test' in (ROOT/'.ci'/'run').read_text()

def test_readme_is_made_from_index_notebook():
    assert (ROOT/'README.md').read_text() == make_readme.render(), "README.md is stale: run python tools/make_readme.py"
