"""Sequence browser: the viewing order, Prev / Next at the ends (stop or wrap), the filters, clear errors for unknown
sequences, frames drawn once per move without open figures; and no notebook under nbs/ carries ipywidgets state."""
import json
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from conftest import ROOT
from iwildcam_nb.core import InputError
from iwildcam_nb.browse import SequenceBrowser, browse_table, browse_sequences

CATS = pd.DataFrame(dict(category_id=[0, 3, 10, 83], name=['empty', 'agouti', 'ocelot', 'bushbuck'], count=5))

def counts(rows): return pd.DataFrame(rows, columns=['seq_id', 'category_id', 'count'])

TRUE = counts([('a', 3, 1), ('b', 10, 2), ('c', 0, 0), ('d', 83, 3), ('e', 3, 1)])
PRED = counts([('a', 3, 1), ('b', 10, 1), ('c', 83, 1), ('d', 83, 3), ('e', 10, 1)])
# right: a, d; count off: b (error 1); phantom in empty: c (wrong species, error 1); agouti taken for ocelot: e (wrong species, error 2)

def images_for(seqs, frames=2):
    t0 = pd.Timestamp('2020-01-01')
    return pd.DataFrame([dict(image_id=f'{s}{k}', seq_id=s, frame_num=k, file_name=f'{s}{k}.jpg', split='test',
                              datetime=t0 + pd.Timedelta(hours=h, seconds=k))
                         for h, s in enumerate(seqs) for k in range(frames)])

def write_frames(folder, ims, w=80, h=60):
    for f in ims.file_name:
        a = np.zeros((h, w, 3), np.uint8); a[...] = np.linspace(30, 220, w, dtype=np.uint8)[None, :, None]
        Image.fromarray(a).save(folder/f)

def test_worst_order_and_fallbacks():
    t = browse_table(PRED, TRUE, CATS)
    assert list(t.seq_id) == ['e', 'c', 'b', 'a', 'd'] # wrong species by error, then count error, then right by seq id
    ims = images_for(['d', 'b', 'a', 'c', 'e'])
    assert list(browse_table(PRED, TRUE, CATS, ims).seq_id[3:]) == ['d', 'a'] # right ones by time
    assert list(browse_table(PRED, images=ims).seq_id) == ['d', 'b', 'a', 'c', 'e'] # no truth: worst falls back to time
    assert list(browse_table(PRED, TRUE, order='seq_id').seq_id) == list('abcde')
    assert browse_table(PRED, TRUE).set_index('seq_id').species['e'] == (3, 10) # true or predicted
    with pytest.raises(ValueError, match='order must be one of'): browse_table(PRED, order='random')

def test_next_prev_stop_at_ends():
    b = SequenceBrowser(browse_table(PRED, TRUE, CATS), names={3: 'agouti'})
    assert b.current == 'e' and b.prev() == 'e' and b.prev_btn.disabled and not b.next_btn.disabled
    seen = [b.current] + [b.next() for _ in range(6)]
    assert seen == ['e', 'c', 'b', 'a', 'd', 'd', 'd'] and b.next_btn.disabled
    assert b.label.value.startswith('5 / 5: d, true bushbuck ×3, predicted bushbuck ×3') and b.slider.value == 5
    b.prev_btn.click()
    assert b.current == 'a'
    b.slider.value = 2 # dragging the slider
    assert b.current == 'c' and 'extra bushbuck ×1' in b.label.value
    with pytest.raises(IndexError, match='no sequence at position 5'): b.show(5)

def test_wrap():
    b = SequenceBrowser(browse_table(PRED, TRUE), wrap=True)
    assert b.prev() == 'd' and b.next() == 'e' and not b.prev_btn.disabled

def test_filters():
    b = SequenceBrowser(browse_table(PRED, TRUE, CATS), names=dict(zip(CATS.category_id, CATS.name)))
    b.show(2) # 'b'
    b.set_filter(wrong_only=True)
    assert b.seq_ids == ['e', 'c', 'b'] and b.current == 'b' # stays on the current one
    b.set_filter(species=10)
    assert b.seq_ids == ['e', 'b'] and b.current == 'b' and b.which.value == 'all'
    b.set_filter(wrong_only=True, species=83)
    assert b.seq_ids == ['c'] and b.current == 'c' and b.label.value.startswith('1 / 1: c')
    b.which.value = 'all' # the toggle calls set_filter, keeping the species
    assert b.seq_ids == ['c', 'd'] and b.filters == dict(wrong_only=False, species=83)
    b.species.value = 'any'
    assert len(b) == 5
    with pytest.raises(InputError, match='999 is not a species'): b.set_filter(species=999)

def test_filter_that_nothing_passes_and_no_truth():
    right = counts([('a', 3, 1)])
    b = SequenceBrowser(browse_table(right, right))
    b.set_filter(wrong_only=True)
    assert (b.current, len(b), b.next(), b.prev()) == (None, 0, None, None)
    assert b.label.value.startswith('0 / 0: no sequence matches the filter (wrong only)') and b.next_btn.disabled
    with pytest.raises(IndexError): b.show(0)
    nt = SequenceBrowser(browse_table(PRED))
    assert nt.which.disabled and nt.label.value == '1 / 5: a, predicted 3 ×1' # no names given: ids
    with pytest.raises(InputError, match='needs the true counts'): nt.set_filter(wrong_only=True)

def test_unknown_and_hidden_seq_ids():
    b = SequenceBrowser(browse_table(PRED, TRUE))
    assert b.goto('d') == 'd'
    with pytest.raises(InputError, match="browse: seq_id: 'zz' is not one of the 5 sequences browsed"): b.goto('zz')
    b.set_filter(wrong_only=True)
    with pytest.raises(InputError, match=r"'d' is hidden by the filter \(wrong only\)"): b.goto('d')
    b.goto_box.value = 'zz' # typed: the label explains, nothing raises
    assert 'not one of the 5' in b.label.value and b.current == 'e'

def test_frames_drawn_once_per_move(tmp_path):
    import matplotlib.pyplot as plt
    ims = images_for(list('abcde'), frames=3)
    write_frames(tmp_path, ims)
    ims = ims[ims.image_id != 'c2'] # a frame listed nowhere: sequence c has 2 frames
    b = browse_sequences(PRED, TRUE, CATS, ims, tmp_path, max_frames=2, thumb=48, dpi=50)
    n_open = len(plt.get_fignums())
    for _ in range(4):
        assert len(b.out.outputs) == 1 and b.out.outputs[0]['data']['image/jpeg'] and not b.error
        assert len(b.fig.axes) == 2 and sum(len(a.images) for a in b.fig.axes) == 2
        assert b.fig._suptitle.get_text().startswith(f'sequence {b.current}')
        b.next()
    assert len(plt.get_fignums()) == n_open
    assert b.snapshot() is not None and b.snapshot().format == 'jpeg'
    assert SequenceBrowser(browse_table(PRED, TRUE)).snapshot() is None # no view: labels only

def test_view_errors_are_shown_not_raised(tmp_path):
    ims = images_for(['a']) # the other sequences have no frames
    b = browse_sequences(PRED, TRUE, CATS, ims, tmp_path)
    assert b.current == 'e' and b.error.startswith("cannot draw e: images: seq_id: no frames for sequence 'e'")
    assert b.out.outputs[0]['output_type'] == 'stream'
    b.goto('a')
    assert not b.error and b.fig is not None # missing files become grey tiles in show_sequence

def test_display_has_a_short_text_fallback():
    from IPython.core.interactiveshell import InteractiveShell
    b = SequenceBrowser(browse_table(PRED, TRUE))
    data, _ = InteractiveShell.instance().display_formatter.format(b.widget)
    assert 'application/vnd.jupyter.widget-view+json' in data
    assert repr(b).startswith('SequenceBrowser: 1 / 5: e, true')

def test_no_notebook_carries_widget_state():
    bad = []
    for p in sorted((ROOT/'nbs').rglob('*.ipynb')):
        if '.ipynb_checkpoints' in p.parts: continue
        nb = json.loads(p.read_text())
        if 'widgets' in nb.get('metadata', {}): bad.append(f'{p.name}: metadata.widgets')
        outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
        if any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in outs): bad.append(f'{p.name}: widget-view output')
    assert not bad, 'strip widget state (see nbs/09c_browse.ipynb): ' + ', '.join(bad)
