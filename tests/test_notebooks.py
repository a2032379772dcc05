"""House rules for the notebooks that a reader would notice broken: every exported function and class is shown
working in a visible lesson cell, and every notebook is a module with a title and subtitle."""
import ast, json, re
import pytest
from conftest import ROOT

NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_') and p.stem != 'index')

def code_cells(nb):
    return [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']

def exported_defs(cells):
    "Public functions and classes defined in `#| export` cells."
    for src in cells:
        if re.match(r'\s*#\|\s*export\b', src):
            for n in ast.parse(src).body:
                if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith('_'): yield n.name

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_every_export_has_a_visible_lesson(nb):
    cells = code_cells(nb)
    visible = [s for s in cells if not re.match(r'\s*#\|\s*(export|hide)\b', s)]
    missing = [n for n in exported_defs(cells) if not any(re.search(rf'\b{n}\b', s) for s in visible)]
    assert not missing, f'{nb.name}: exported without a visible lesson cell: {missing}'

@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_title_and_subtitle(nb):
    cells = json.loads(nb.read_text())['cells']
    assert re.match(r'\s*#\|\s*default_exp\s+\w+', ''.join(cells[0]['source'])), f'{nb.name}: first cell is not default_exp'
    md = next(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')
    assert re.match(r'# .+\n+> .+', md), f'{nb.name}: first markdown cell is not "# Title" + "> subtitle"'
