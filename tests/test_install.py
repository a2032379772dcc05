"""Install smoke tests: the package imports cleanly, its console script is on PATH, the README is current, a wheel holds it all."""
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

def test_wheel_install_is_complete(tmp_path):
    "A wheel (what `pip install iwildcam_nb` installs): every module and data file, the licence, the console script; it runs."
    import shutil, zipfile
    src = tmp_path/'src' # a copy: building in the checkout would leave build/ and egg-info in it
    src.mkdir()
    for f in ('setup.py', 'settings.ini', 'pyproject.toml', 'MANIFEST.in', 'README.md', 'LICENSE'): shutil.copy(ROOT/f, src/f)
    shutil.copytree(ROOT/'iwildcam_nb', src/'iwildcam_nb', ignore=shutil.ignore_patterns('__pycache__'))
    pip = [sys.executable, '-m', 'pip', '-q', '--disable-pip-version-check']
    r = subprocess.run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '--no-index', str(src), '-w', str(tmp_path/'dist')],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    whl, = (tmp_path/'dist').glob('iwildcam_nb-*.whl')
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        info = next(n.split('/')[0] for n in names if n.endswith('.dist-info/METADATA'))
        entry_points = z.read(f'{info}/entry_points.txt').decode()
    package = {p.relative_to(src).as_posix() for p in (src/'iwildcam_nb').rglob('*') if p.is_file()}
    assert package <= names, sorted(package - names)
    assert f'{info}/licenses/LICENSE' in names or f'{info}/LICENSE' in names, sorted(n for n in names if 'dist-info' in n)
    assert 'iwildcam-nb = iwildcam_nb.cli:main' in entry_points
    r = subprocess.run([*pip, 'install', '--no-deps', '--no-index', '--target', str(tmp_path/'site'), str(whl)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    code = ("import iwildcam_nb, iwildcam_nb.camtrapdp as c; print(iwildcam_nb.__file__); "
            "print(sorted(p.name for p in (c.SCHEMA_DIR/'1.0').iterdir()))")
    env = {'PATH': '/usr/bin:/bin', 'PYTHONPATH': str(tmp_path/'site'), 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    where, schemas = r.stdout.splitlines()
    assert where.startswith(str(tmp_path/'site')), where # the installed copy, not this checkout
    assert 'observations-table-schema.json' in schemas, schemas
    r = subprocess.run([sys.executable, '-m', 'iwildcam_nb.cli', '--help'], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0 and 'demo' in r.stdout, r.stderr
