"""Remove ipywidgets state from notebooks (nbdev_clean keeps it): `python tools/strip_widgets.py [NOTEBOOK ...]`.

With no argument every notebook under nbs/ is cleaned. Run it after saving a notebook that displayed a widget;
tests/test_browse.py fails while any notebook still carries widget state.
"""
import sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent
WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json'

def strip(path)->bool:
    "Drop the notebook's `widgets` metadata and widget-view outputs; True if the file changed."
    nb = nbformat.read(path, as_version=4)
    changed = nb.metadata.pop('widgets', None) is not None
    for c in nb.cells:
        for o in c.get('outputs', []) if c.cell_type == 'code' else []:
            changed |= o.get('data', {}).pop(WIDGET_VIEW, None) is not None
    if changed: nbformat.write(nb, path)
    return changed

if __name__ == '__main__':
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT/'nbs').rglob('*.ipynb'))
    for p in paths:
        if '.ipynb_checkpoints' not in p.parts and strip(p): print(f'stripped widget state from {p}')
