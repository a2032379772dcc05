"""Write README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which cannot be installed offline).

Markdown cells are copied as they are; code cells become ```python blocks with their text outputs;
cells marked `#| hide` are left out. `python tools/make_readme.py --check` exits 1 if README.md is stale.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _text_output(o):
    if o.get('output_type') == 'stream': return ''.join(o.get('text', ''))
    return ''.join(o.get('data', {}).get('text/plain', ''))

def render(nb_path=ROOT/'nbs'/'index.ipynb')->str:
    "README.md text made from the index notebook."
    parts = []
    for c in json.loads(Path(nb_path).read_text())['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': parts.append(src.replace('](images/', '](nbs/images/')); continue # pictures live in nbs/images
        if src.lstrip().startswith('#| hide') or '\n#| hide' in src: continue
        parts.append(f"```python\n{src}\n```")
        out = ''.join(_text_output(o) for o in c.get('outputs', [])).rstrip()
        if out: parts.append(f"```\n{out}\n```")
    return '\n\n'.join(parts).rstrip() + '\n'

if __name__ == '__main__':
    text, readme = render(), ROOT/'README.md'
    if '--check' in sys.argv: sys.exit(0 if readme.exists() and readme.read_text() == text else 1)
    readme.write_text(text)
