"""Report stage: the confusion and count-error tables on hand-built cases and against independent computations,
the worst-sequence ranking, the sequence view on missing, corrupt and truncated frames, and the files `report` writes."""
import subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from iwildcam_nb.core import InputError
from iwildcam_nb.metrics import seq_accuracy
from iwildcam_nb.errors import (confusion_table, count_errors, count_pairs, worst_sequences, sequence_errors,
                                top_species, sequence_labels, SEQ_RULES)
from iwildcam_nb.frames import show_sequence, MD_COLOURS
from iwildcam_nb.report import fold_classes, report, ReportOpts

CATS = pd.DataFrame(dict(category_id=[0, 3, 10, 83], name=['empty', 'agouti', 'ocelot', 'bushbuck'], count=[5, 5, 5, 5]))

def counts(rows): return pd.DataFrame(rows, columns=['seq_id', 'category_id', 'count'])

def frame(path, w=160, h=120):
    "A small JPEG with a horizontal gradient (so a decoded frame is never flat, unlike a placeholder)."
    a = np.zeros((h, w, 3), np.uint8); a[...] = np.linspace(30, 220, w, dtype=np.uint8)[None, :, None]
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, quality=90)
    return path

# --- confusion --------------------------------------------------------------------------------------

def test_confusion_table_hand_built():
    truth = pd.DataFrame(dict(image_id=['a', 'b', 'c', 'd', 'e', 'only_true'], category_id=[3, 3, 10, 0, 10, 83]))
    pred = pd.DataFrame(dict(image_id=['a', 'b', 'c', 'd', 'e', 'only_pred'], seq_id='s', label=[3, 10, 10, 999, 10, 3], score=.5))
    ct = confusion_table(truth, pred, CATS)
    # classes: union of both sides over the aligned items; 999 is predicted only and not in the categories table
    assert list(ct.index) == ['empty', 'agouti', 'ocelot', '999'] and list(ct.columns) == list(ct.index)
    assert (ct.index.name, ct.columns.name) == ('true', 'predicted')
    assert ct.loc['agouti', 'agouti'] == 1 and ct.loc['agouti', 'ocelot'] == 1 and ct.loc['ocelot', 'ocelot'] == 2
    assert ct.loc['empty', '999'] == 1 and ct.loc['999'].sum() == 0 and ct['empty'].sum() == 0
    assert ct.to_numpy().sum() == 5 # 'only_true' and 'only_pred' are labelled on one side only
    full = confusion_table(truth, pred, CATS, all_classes=True)
    assert list(full.index) == ['empty', 'agouti', 'ocelot', 'bushbuck', '999'] and full.loc['bushbuck'].sum() == 0

def test_confusion_table_matches_sklearn():
    from sklearn.metrics import confusion_matrix
    rng = np.random.default_rng(1)
    ids = [f'i{k}' for k in range(300)]
    t = pd.Series(rng.choice([0, 3, 10], 300), index=ids)
    p = pd.Series(rng.choice([0, 3, 10, 83], 300), index=ids).sample(frac=1, random_state=0) # other order: aligned by id
    ct = confusion_table(t, p, CATS)
    want = confusion_matrix(t.to_numpy(), p.loc[ids].to_numpy(), labels=[0, 3, 10, 83])
    assert (ct.to_numpy() == want).all()

def test_fold_keeps_totals():
    rng = np.random.default_rng(2)
    t, p = pd.Series(rng.integers(0, 30, 500)), pd.Series(rng.integers(0, 30, 500))
    ct = confusion_table(t, p)
    f = fold_classes(ct, 8)
    assert f.shape == (8, 8) and f.index[-1] == 'other' and f.to_numpy().sum() == 500
    assert f.loc[f.index[:-1], f.columns[:-1]].equals(ct.loc[f.index[:-1], f.columns[:-1]]) # kept cells untouched

# --- counts ----------------------------------------------------------------------------------------

TRUE = counts([('s1', 3, 2), ('s1', 10, 1), ('s2', 10, 3), ('s3', 0, 0), ('s4', 83, 1), ('s5', 83, 4)])
PRED = counts([('s1', 3, 2), ('s2', 3, 3), ('s3', 10, 1), ('s5', 83, 4), ('s9', 3, 5)]) # s4 missing, s9 has no truth

def test_count_errors_hand_built():
    ce = count_errors(PRED, TRUE, CATS)
    assert list(ce.index) == [3, 10, 83] and ce.loc[10, 'name'] == 'ocelot'
    # agouti: s1 right (2 vs 2), s2 phantom (0 vs 3)
    assert ce.loc[3, ['n_seqs', 'true_total', 'pred_total']].tolist() == [2, 2, 5]
    assert ce.loc[3, 'mae'] == pytest.approx(1.5) and ce.loc[3, 'bias'] == pytest.approx(1.5) and ce.loc[3, 'exact'] == .5
    # ocelot: s1 missed 1, s2 missed 3, s3 phantom 1
    assert ce.loc[10, 'rmse'] == pytest.approx(np.sqrt(11/3)) and ce.loc[10, 'bias'] == pytest.approx(-1)
    assert ce.loc[10, 'exact'] == 0
    # bushbuck: s4 has no prediction (counted as 0), s5 right
    assert ce.loc[83, ['n_seqs', 'pred_total']].tolist() == [2, 4] and ce.loc[83, 'mae'] == pytest.approx(.5)

def test_count_errors_match_dense_computation():
    rng = np.random.default_rng(3)
    seqs, sp = [f's{k}' for k in range(40)], [3, 10, 83]
    T, P = rng.integers(0, 3, (40, 3)) * (rng.random((40, 3)) < .4), rng.integers(0, 3, (40, 3)) * (rng.random((40, 3)) < .4)
    long = lambda M: counts([(s, c, int(M[i, j])) for i, s in enumerate(seqs) for j, c in enumerate(sp) if M[i, j]] +
                            [(s, 0, 0) for i, s in enumerate(seqs) if not M[i].any()])
    ce = count_errors(long(P), long(T), CATS)
    for j, c in enumerate(sp):
        on = (T[:, j] > 0) | (P[:, j] > 0)
        e = P[on, j] - T[on, j]
        assert ce.loc[c, 'n_seqs'] == on.sum()
        assert ce.loc[c, 'rmse'] == pytest.approx(np.sqrt((e**2).mean()))
        assert ce.loc[c, 'bias'] == pytest.approx(e.mean()) and ce.loc[c, 'exact'] == pytest.approx((e == 0).mean())

def test_count_pairs_species_missing_on_one_side_is_zero():
    cp = count_pairs(PRED, TRUE).set_index(['seq_id', 'category_id'])
    assert cp.loc[('s2', 3)].tolist() == [0, 3] and cp.loc[('s2', 10)].tolist() == [3, 0]
    assert cp.loc[('s4', 83)].tolist() == [1, 0]
    assert 's9' not in cp.index.get_level_values(0) and 0 not in cp.index.get_level_values(1)

@pytest.mark.parametrize('bad, msg', [
    (counts([('s1', 3, 1), ('s1', 3, 2)]), 'appears twice'),
    (counts([('s1', 3, -1)]), 'count (seq s1): not a whole number >= 0'),
    (counts([('s1', 3, 1.5)]), 'not a whole number'),
    (pd.DataFrame(dict(seq_id=['s1'], category_id=[3])), 'count: required column is missing')])
def test_bad_count_tables(bad, msg):
    with pytest.raises(InputError) as e: count_errors(bad, TRUE)
    assert msg in str(e.value) and str(e.value).startswith('pred_counts: ')

def test_top_species_ties():
    t = counts([('a', 3, 1), ('a', 10, 1), ('b', 0, 0)]).assign(score=[.2, .9, .5])
    assert top_species(t).to_dict() == {'a': 10, 'b': 0} # equal counts: the higher score wins
    assert top_species(t.drop(columns='score')).to_dict() == {'a': 3, 'b': 0} # then the lower id

# --- worst sequences -------------------------------------------------------------------------------

def test_worst_sequences_order_and_reason():
    w = worst_sequences(PRED, TRUE, n=10, categories=CATS)
    # wrong species first (s2 error 6; then s1, s3, s4 error 1 each, by seq_id); s5 is right and never listed
    assert w.seq_id.tolist() == ['s2', 's1', 's3', 's4']
    assert w.wrong_species.all() and w.count_error.tolist() == [6, 1, 1, 1]
    assert w.loc[0, 'reason'] == 'ocelot ×3 taken for agouti ×3'
    assert w.loc[1, 'reason'] == 'missed ocelot ×1' and w.loc[2, 'reason'] == 'extra ocelot ×1'
    assert (w.loc[3, 'true'], w.loc[3, 'pred']) == ('bushbuck ×1', 'empty')
    assert len(worst_sequences(PRED, TRUE, n=2)) == 2

def test_count_only_errors_rank_after_species_errors():
    t = counts([('x', 83, 6), ('y', 83, 1)])
    p = counts([('x', 83, 1), ('y', 10, 1)])
    w = worst_sequences(p, t, n=5, categories=CATS)
    assert w.seq_id.tolist() == ['y', 'x'] # a wrong species outranks a count off by 5
    assert w.loc[1, 'reason'] == 'bushbuck: counted 1, true 6' and not w.loc[1, 'wrong_species']
    assert len(sequence_errors(t, t)) == 2 and worst_sequences(t, t).empty

# --- the sequence view -----------------------------------------------------------------------------

def seq_images(root, n=3):
    files = [frame(root/'cam'/f'f{k}.jpg') for k in range(n)]
    return pd.DataFrame(dict(image_id=[f'i{k}' for k in range(n)], seq_id='s', frame_num=range(n),
                             file_name=[f'cam/f{k}.jpg' for k in range(n)])), files

def test_show_sequence_missing_and_corrupt_frames(tmp_path):
    ims, files = seq_images(tmp_path, 4)
    files[1].unlink() # deleted since the run
    files[2].write_bytes(b'not a jpeg at all') # corrupt
    data = files[3].read_bytes(); files[3].write_bytes(data[:len(data)//2]) # truncated upload
    fig = show_sequence('s', ims, tmp_path, truth=TRUE.assign(seq_id='s').iloc[:1], categories=CATS)
    axs = fig.axes
    assert len(axs) == 4 and all(len(a.images) == 1 for a in axs) # every frame gets a tile
    tile_text = [' '.join(t.get_text().replace('\n', ' ') for t in a.texts) for a in axs]
    assert tile_text[1] == 'missing file' and tile_text[2].startswith('unreadable')
    assert tile_text[0] == '' and 'truncated' in axs[3].get_title() and tile_text[3] == ''
    assert np.ptp(np.asarray(axs[1].images[0].get_array())) == 0 # a flat grey placeholder...
    assert np.ptp(np.asarray(axs[0].images[0].get_array())) > 100 # ...where a readable frame shows its gradient

def test_show_sequence_boxes_and_title(tmp_path):
    ims, _ = seq_images(tmp_path, 8)
    dets = pd.DataFrame(dict(image_id=['i0', 'i0', 'i7', 'i3'], det_idx=[0, 1, 0, 0], category=['animal', 'person', 'animal', 'animal'],
                             conf=[.9, .5, .8, .1], x=.1, y=.2, w=.5, h=.4))
    t, p = counts([('s', 83, 2)]), counts([('s', 10, 1)])
    fig = show_sequence('s', ims, tmp_path, dets, t, p, conf=.3, max_frames=3, thumb=64, categories=CATS)
    assert [a.get_title() for a in fig.axes] == ['#0', '#4', '#7'] # first, middle, last of 8
    colours = [tuple(np.round(r.get_edgecolor()[:3], 3)) for r in fig.axes[0].patches]
    hexrgb = lambda h: tuple(round(int(h[i:i+2], 16)/255, 3) for i in (1, 3, 5))
    assert colours == [hexrgb(MD_COLOURS['animal']), hexrgb(MD_COLOURS['person'])]
    assert len(fig.axes[2].patches) == 1 and [t.get_text() for t in fig.axes[2].texts] == ['0.80']
    assert fig.axes[0].patches[0].get_width() == pytest.approx(.5*64) # boxes are scaled to the thumbnail
    title = fig._suptitle.get_text()
    assert '3 of 8 frames' in title and 'true: bushbuck ×2' in title and 'predicted: ocelot ×1' in title
    with pytest.raises(InputError, match='no frames'): show_sequence('nope', ims, tmp_path)

def test_show_sequence_split_roots_and_unsafe_path(tmp_path):
    frame(tmp_path/'train'/'a.jpg'); frame(tmp_path/'test'/'b.jpg')
    ims = pd.DataFrame(dict(image_id=['a', 'b', 'c'], seq_id='s', frame_num=[0, 1, 2], split=['train', 'test', 'test'],
                            file_name=['a.jpg', 'b.jpg', '../../outside.jpg']))
    fig = show_sequence('s', ims, {'train': tmp_path/'train', 'test': tmp_path/'test'})
    assert [len(a.texts) for a in fig.axes] == [0, 0, 1] and 'bad path' in fig.axes[2].texts[0].get_text()

# --- the report ------------------------------------------------------------------------------------

def test_report_writes_pngs(tmp_path):
    ims, _ = seq_images(tmp_path/'img', 3)
    ims = pd.concat([ims, ims.assign(image_id=ims.image_id + 'b', seq_id='s2')]) # same files, second sequence
    t = counts([('s', 83, 2), ('s2', 10, 1)])
    p = counts([('s', 3, 2), ('s2', 10, 3)])
    out = tmp_path/'out'; out.mkdir()
    (out/'worst_7.png').write_bytes(b'stale'); (out/'worst_notes.png').write_bytes(b'user file')
    labels = pd.DataFrame(dict(image_id=ims.image_id, category_id=np.where(ims.seq_id == 's', 83, 10))) # the frames agree with the counts
    preds = pd.DataFrame(dict(image_id=ims.image_id, seq_id=ims.seq_id, label=3, score=.7, source='test'))
    r = report(p, t, CATS, ims, tmp_path/'img', image_preds=preds, labels=labels, out_dir=out, opts=ReportOpts(n_worst=5, dpi=40))
    pngs = sorted(f.name for f in out.glob('*.png'))
    assert pngs == ['confusion.png', 'confusion_images.png', 'count_errors.png', 'worst_1.png', 'worst_2.png', 'worst_notes.png']
    for f in out.glob('*.png'):
        if f.name != 'worst_notes.png':
            with Image.open(f) as im: assert im.format == 'PNG' and im.width > 50
    assert not list(out.glob('.*.tmp')) # nothing half-written left behind
    w = pd.read_csv(out/'worst_sequences.csv')
    assert w.seq_id.tolist() == ['s', 's2'] and w.count_error.tolist() == [4, 2]
    ce = pd.read_csv(out/'count_errors.csv', index_col='category_id')
    assert ce.loc[10, 'bias'] == pytest.approx(2) and ce.loc[83, 'pred_total'] == 0
    assert set(r.files) == {out/f'{k}.png' for k in r.figures} | {out/f'{k}.csv' for k in r.tables}
    conf = pd.read_csv(out/'confusion.csv', index_col=0)
    assert conf.loc['bushbuck', 'agouti'] == 1 and conf.loc['ocelot', 'ocelot'] == 1

def test_report_without_frames_or_folder():
    r = report(PRED, TRUE, CATS)
    assert sorted(r.figures) == ['confusion', 'count_errors'] and r.files == []
    assert len(r.tables['worst_sequences']) == 3
    # the sequence confusion: a truth sequence without prediction (s4) counts as predicted empty
    assert r.tables['confusion'].loc['bushbuck', 'empty'] == 1 and r.tables['confusion'].to_numpy().sum() == 5

def test_report_on_the_sample(tmp_path):
    from iwildcam_nb.sample import make_sample, read_sample
    d = read_sample(make_sample(tmp_path/'data'))
    pred = d['counts'].copy()
    pred.loc[pred.category_id != 0, 'count'] += 1 # everybody overcounted by one
    r = report(pred, d['counts'], d['categories'], d['images'], {s: d['root']/s for s in ('train', 'test')}, d['detections'],
               out_dir=tmp_path/'rep', opts=ReportOpts(n_worst=2))
    ce = r.tables['count_errors']
    assert (ce.bias == 1).all() and (ce.exact == 0).all() and (ce.mae == 1).all()
    assert np.trace(r.tables['confusion'].to_numpy()) == d['counts'].seq_id.nunique() # species all right
    assert (tmp_path/'rep'/'worst_2.png').exists() and not r.tables['worst_sequences'].wrong_species.any()

# --- the sequence accuracy: the report's and the evaluation's (issue 13) ------------------------------

def two_species_case():
    "Three sequences: 'two' holds 2 curassows (374) on 3 frames and 1 ocelot (10) on 7; 'one' an agouti; 'none' nothing."
    ims = pd.DataFrame(dict(image_id=[f'f{k}' for k in range(14)], seq_id=['two']*10 + ['one']*2 + ['none']*2))
    labels = pd.DataFrame(dict(image_id=ims.image_id, category_id=[374]*3 + [10]*7 + [3]*2 + [0]*2))
    t = counts([('two', 374, 2), ('two', 10, 1), ('one', 3, 1), ('none', 0, 0)])
    return ims, labels, t

def test_sequence_accuracy_is_the_evaluations():
    ims, labels, t = two_species_case()
    want = seq_accuracy(t, labels, ims) # what pipeline.evaluate reports: 'two' is ocelot by frames, curassow by counts
    assert want == pytest.approx(2/3)
    r = report(t, t, CATS, ims, labels=labels) # counts predicted exactly right
    ct = r.tables['confusion']
    assert np.trace(ct.to_numpy())/ct.to_numpy().sum() == pytest.approx(want) and ct.to_numpy().sum() == 3
    title = r.figures['confusion'].axes[0].get_title().split('\n')
    assert title[:2] == ['accuracy 66.7% of 3 sequences', 'true: species on most frames; predicted: largest count']
    st, sp, rule = sequence_labels(t, t, labels, ims)
    assert (st.to_dict(), sp.to_dict(), rule) == ({'two': 10, 'one': 3, 'none': 0}, {'two': 374, 'one': 3, 'none': 0}, 'frames')

def test_sequence_accuracy_without_frame_labels_names_its_rule(caplog):
    ims, labels, t = two_species_case()
    r = report(t, t, CATS) # counts only: both sides by the largest count, and the title says so
    assert r.figures['confusion'].axes[0].get_title().split('\n')[:2] == ['accuracy 100.0% of 3 sequences', SEQ_RULES['counts']]
    r = report(t, t, CATS, ims[ims.image_id != 'f0'], labels=labels[labels.image_id != 'f12']) # a frame without a label: warned, counts
    assert SEQ_RULES['counts'] in r.figures['confusion'].axes[0].get_title() and 'labelled by their counts' in caplog.text
    assert sequence_labels(t.iloc[:2], t, labels, ims)[1].to_dict() == {'two': 374, 'one': 0, 'none': 0} # no prediction: empty

def test_sequence_accuracy_on_the_sample(tmp_path):
    from iwildcam_nb.sample import make_sample, read_sample
    d = read_sample(make_sample(tmp_path/'data'))
    test = d['images'][d['images'].split == 'test']
    truth = d['counts'][d['counts'].split == 'test']
    pred = truth.copy()
    r = report(pred, truth, d['categories'], test, labels=d['labels'])
    ct = r.tables['confusion']
    assert np.trace(ct.to_numpy())/ct.to_numpy().sum() == pytest.approx(seq_accuracy(pred, d['labels'], test))
    assert np.trace(ct.to_numpy()) < truth.seq_id.nunique() # the two-species test sequence is wrong by its frames

def test_no_heavy_imports():
    code = "import sys, iwildcam_nb.report; bad = [m for m in ('torch', 'fastai', 'seaborn') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, '-c', code], check=True)
