"""The layout tells the data's story: a module imports only modules whose notebook comes no later than its own
(numbers, then letters: 01a before 02, 03c before 04), and no module reaches into another's private names."""
import ast, json, re
import pytest
from conftest import ROOT

def notebook_of_module()->dict:
    "Module name -> the stem of the notebook it is exported from (`#| default_exp`)."
    res = {}
    for nb in (ROOT/'nbs').glob('*.ipynb'):
        first = ''.join(json.loads(nb.read_text())['cells'][0]['source'])
        if m := re.search(r'#\|\s*default_exp\s+(\w+)', first): res[m.group(1)] = nb.stem
    return res

NB = notebook_of_module()

def order(stem:str)->tuple:
    "The position of a notebook: (number, letters) of its prefix, e.g. '03c_backbones' -> (3, 'c')."
    num, letters = re.match(r'(\d+)([a-z]*)_', stem).groups()
    return int(num), letters

def source(mod:str)->str: return (ROOT/'iwildcam_nb'/f'{mod}.py').read_text()

def package_imports(src:str)->list[tuple[str, str, int]]:
    "(module imported, name imported or '', line) for every import of the package's own modules in `src`, functions included."
    tree, res = ast.parse(src), []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            target = n.module if n.level == 1 else (n.module or '').removeprefix('iwildcam_nb').lstrip('.')
            if n.level != 1 and not (n.module or '').startswith('iwildcam_nb'): continue
            for a in n.names:
                if target: res.append((target.split('.')[0], a.name, n.lineno))
                else: res.append((a.name, '', n.lineno)) # from . import metrics
        elif isinstance(n, ast.Import):
            res += [(a.name.split('.')[1], '', n.lineno) for a in n.names if a.name.startswith('iwildcam_nb.')]
    return res

def private_attribute_uses(src:str)->list[tuple[str, str, int]]:
    "(module alias, private name, line) for `alias._name` where `alias` is one of the package's modules."
    tree = ast.parse(src)
    aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.level == 1 and n.module is None)
               for a in n.names}
    aliases |= {a.asname or a.name.split('.')[-1] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names if a.name.startswith('iwildcam_nb.')}
    return [(n.value.id, n.attr, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id in aliases and n.attr.startswith('_') and not n.attr.startswith('__')]

@pytest.mark.parametrize('mod', sorted(NB), ids=str)
def test_imports_follow_the_numbering(mod):
    later = [f'{m} ({NB[m]}, line {ln})' for m, _, ln in package_imports(source(mod)) if m in NB and order(NB[m]) > order(NB[mod])]
    assert not later, f'{mod} ({NB[mod]}) imports modules of later notebooks: {later}'

@pytest.mark.parametrize('mod', sorted(NB), ids=str)
def test_no_private_names_of_other_modules(mod):
    reach = [f'{m}.{name} (line {ln})' for m, name, ln in package_imports(source(mod)) if name.startswith('_') and name != '__version__' and m != mod]
    reach += [f'{m}.{name} (line {ln})' for m, name, ln in private_attribute_uses(source(mod))]
    assert not reach, f'{mod} reaches into private names: {reach}'

def test_the_checks_see_a_violation():
    "The parsers find each kind of import and reach-in, in a made-up module."
    src = ("from .photos import _isatty, list_images\nfrom . import metrics\nimport iwildcam_nb.data as d\n"
           "def f():\n    from iwildcam_nb.models import train\n    return d._stamp, metrics._x, d.ok\n")
    assert package_imports(src) == [('photos', '_isatty', 1), ('photos', 'list_images', 1), ('metrics', '', 2), ('data', '', 3), ('models', 'train', 5)]
    assert sorted(private_attribute_uses(src)) == [('d', '_stamp', 6), ('metrics', '_x', 6)]
    assert order('03c_backbones') < order('04_models') and order('02_sample') < order('02a_x') < order('10_cli')
