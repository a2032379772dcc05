"""Sequence stage: the vote ignores empty frames, detector rules fire as documented, the counting rules on hand-built
cases, seq_preds shape, bad input, and the whole stage on the benchmark's generated iWildCam-shaped set at 1/100 size
(speed is measured by benchmarks/bench_aggregate.py, not here)."""
import importlib.util, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from iwildcam_nb.core import InputError
from iwildcam_nb.metrics import sequences_to_submit, submission_2021, submission_2020, seq_pred_labels, write_submission, read_submission
from iwildcam_nb.vocab import class_vocab
from iwildcam_nb.sequences import VoteConfig, seq_vote, decide_sequences, check_image_preds, special_ids
from iwildcam_nb.counts import (CountConfig, count_boxes, count_sequences, count_max_frame, count_mode_frame, count_tracks,
                                predict_sequences)

ROOT = Path(__file__).resolve().parent.parent
CATS = pd.DataFrame({'category_id': [0, 3, 10, 75], 'name': ['empty', 'agouti', 'ocelot', 'Human']})

def preds_of(seq_labels):
    "image_preds from {seq_id: [labels]}; score 0.9."
    rows = [(f'{s}_{k}', s, l) for s, ls in seq_labels.items() for k, l in enumerate(ls)]
    return pd.DataFrame(rows, columns=['image_id', 'seq_id', 'label']).assign(score=.9)

def images_of(preds):
    return preds[['image_id', 'seq_id']].assign(frame_num=preds.groupby('seq_id').cumcount())

def box(image_id, det_idx=0, category='animal', conf=.95, x=.1, y=.5, w=.1, h=.1):
    return dict(image_id=image_id, det_idx=det_idx, category=category, conf=conf, x=x, y=y, w=w, h=h)

@pytest.mark.parametrize('n_empty', [0, 1, 5, 20])
def test_majority_vote_ignores_empty_frames(n_empty):
    p = preds_of({'s': [0]*n_empty + [3, 3, 10]})
    assert seq_vote(p).loc['s', 'label'] == 3
    assert seq_vote(preds_of({'s': [0]*(n_empty + 1)})).loc['s', 'label'] == 0 # empty only if every frame is

def test_mean_prob_vote_needs_probs_and_averages():
    p = preds_of({'s': [3, 10]})
    probs = pd.DataFrame({0: [.1, .1], 3: [.5, .1], 10: [.4, .8]}, index=p.image_id)
    with pytest.raises(InputError, match='needs the probs table'): seq_vote(p, rule='mean_prob')
    assert seq_vote(p, probs, 'mean_prob').loc['s', 'label'] == 10

def test_detector_rules():
    p = preds_of({'a': [3, 3], 'b': [3], 'c': [10], 'd': [0, 0]})
    dets = pd.DataFrame([box('a_0', conf=.9), box('b_0', conf=.2), box('c_0', category='person', conf=.8), box('d_1', conf=.95)])
    probs = pd.DataFrame(0., index=p.image_id, columns=[0, 3, 10, 75])
    probs.loc[:, 3] = .9; probs.loc[:, 0] = .1
    probs.loc['c_0'] = [.1, 0, .9, 0]; probs.loc[['d_0', 'd_1']] = [[.6, .3, .1, 0]]*2
    s = decide_sequences(p, dets, images_of(p), CATS, probs)
    assert s.source.to_dict() == {'a': 'vote:majority', 'b': 'vote:majority', 'c': 'detector:person', 'd': 'detector:animal box'}
    assert s.label.to_dict() == {'a': 3, 'b': 3, 'c': 75, 'd': 3} # b: no box >= .3 but the classifier is 0.9 sure
    s2 = decide_sequences(p, dets, images_of(p), CATS, probs.assign(**{'3': 0}).drop(columns=3).pipe(lambda d: d.assign(**{'0': 1 - d[10]}).drop(columns=0)).rename(columns=int))
    assert s2.loc['b', 'source'] == 'detector:no animal' and s2.loc['b', 'label'] == 0

def test_special_ids_by_name():
    assert special_ids(CATS) == {'person': 75, 'vehicle': None}

def test_count_rule_a_hand_built():
    "max_frame: the most boxes at or above 0.8 in any one frame, given to the sequence's label."
    p = preds_of({'s': [3, 3, 3], 'e': [0]})
    dets = pd.DataFrame([box('s_0', 0, conf=.9), box('s_1', 0, conf=.95), box('s_1', 1, conf=.85, x=.5), box('s_1', 2, conf=.79, x=.7),
                         box('s_2', 0, conf=.9), box('e_0', 0, conf=.99)])
    seq = decide_sequences(p, dets, images_of(p), CATS, cfg=VoteConfig(use_detector=False))
    sp = count_sequences(seq, dets, images_of(p), CATS, cfg=CountConfig(rule='max_frame'))
    assert sp[['seq_id', 'category_id', 'count']].values.tolist() == [['e', 0, 0], ['s', 3, 2]] # the 0.79 box is not counted

def test_mode_and_tracks_hand_built():
    b = pd.DataFrame({'seq_id': 's', 'label': 3, 'species': 3, 'image_id': ['f0', 'f1', 'f1', 'f2', 'f3'], 'frame_num': [0, 1, 1, 2, 3],
                      'x': [.1, .15, .7, .75, .8], 'y': .5, 'w': .1, 'h': .1})
    assert count_mode_frame(b).iloc[0] == 1
    assert count_max_frame(b).iloc[0] == 2
    assert count_tracks(b, CountConfig(link_dist=1.)).iloc[0] == 2 # .1 -> .15 then gone; .7 -> .75 -> .8

def test_tracks_count_single_file_beyond_any_frame():
    "Five animals walking past in single file, at most two in view: tracks count 5, max_frame 2."
    rows = [dict(seq_id='s', label=3, species=3, image_id=f'f{t}', frame_num=t, x=.05 + .08*(t - k*3), y=.5, w=.05, h=.05)
            for k in range(5) for t in range(k*3, k*3 + 4)]
    b = pd.DataFrame(rows)
    b = b[(b.x >= 0) & (b.x <= .95)]
    assert count_max_frame(b).iloc[0] < 5
    assert count_tracks(b).iloc[0] == 5

def test_two_species_counted_apart():
    p = preds_of({'s': [3, 3]})
    dets = pd.DataFrame([box('s_0', 0), box('s_0', 1, x=.6), box('s_1', 0), box('s_1', 1, x=.6)])
    crops = dets[['image_id', 'det_idx']].assign(crop_id=['c0', 'c1', 'c2', 'c3'])
    crop_probs = pd.DataFrame({0: [0.]*4, 3: [.9, .1, .9, .1], 10: [.1, .9, .1, .9]}, index=crops.crop_id)
    seq = seq_vote(p)
    sp = count_sequences(seq, dets, images_of(p), CATS, crop_probs, crops, CountConfig(rule='species_max'))
    assert dict(zip(sp.category_id, sp['count'])) == {3: 1, 10: 1}
    sp = count_sequences(seq, dets, images_of(p), CATS, crop_probs, crops, CountConfig(rule='max_frame'))
    assert dict(zip(sp.category_id, sp['count'])) == {3: 2}

def test_empty_vote_gets_one_zero_row_and_nonempty_min_count():
    p = preds_of({'e': [0, 0], 'n': [10]})
    sp = predict_sequences(p, pd.DataFrame([box('e_0', conf=.1)]), images_of(p), CATS, vote=VoteConfig(use_detector=False))
    assert sp[['seq_id', 'category_id', 'count']].values.tolist() == [['e', 0, 0], ['n', 10, 1]]

def test_bad_input():
    p = preds_of({'s': [3]})
    with pytest.raises(InputError, match="image_preds: row 's_0': seq_id is missing"): check_image_preds(p.assign(seq_id=None))
    with pytest.raises(InputError, match='image appears twice'): check_image_preds(pd.concat([p, p]))
    with pytest.raises(InputError, match='rule'): VoteConfig(rule='plurality')
    with pytest.raises(InputError, match='rule'): CountConfig(rule='guess')
    with pytest.raises(InputError, match='detections: conf: required column is missing'):
        decide_sequences(p, pd.DataFrame([box('s_0')]).drop(columns='conf'), images_of(p), CATS)
    probs = pd.DataFrame({0: [.5], 3: [.5]}, index=['other'])
    with pytest.raises(InputError, match="probs: row 'other': image is not in image_preds"): seq_vote(p, probs, 'mean_prob')

def _bench():
    "The generator of benchmarks/bench_aggregate.py (the same iWildCam-shaped set the speed is measured on)."
    spec = importlib.util.spec_from_file_location('bench_aggregate', ROOT/'benchmarks'/'bench_aggregate.py')
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

@pytest.fixture(scope='module')
def generated():
    "The benchmark's set at 1/100 of iWildCam 2021's test set: 2,600 images, 600 sequences, 3,000 boxes, 200 classes."
    return _bench().make_set(0.01, seed=1)

def test_generated_set_is_iwildcam_shaped(generated):
    d = generated; im = d['images']
    assert len(im) == 2600 and im.seq_id.nunique() == 600 and len(d['dets']) == 3000
    n = im.groupby('seq_id').frame_num.agg(['size', 'min', 'max'])
    assert n['size'].between(1, 10).all() and (n['min'] == 0).all() and (n['max'] == n['size'] - 1).all()
    assert (d['probs'].index == d['preds'].image_id).all()
    np.testing.assert_allclose(d['probs'].sum(axis=1), 1, atol=1e-5)
    assert (d['dets'].groupby('image_id').det_idx.agg(lambda x: sorted(x) == list(range(len(x))))).all()

def _max_frame_by_hand(seq, dets, images, cats, conf):
    "max_frame as a plain loop: the most boxes of the label's detector kind at >= conf in one image, at least 1."
    kind = {i: k for k, i in special_ids(cats).items() if i is not None}
    d = dets[dets.conf >= conf].merge(images[['image_id', 'seq_id']], on='image_id')
    most = d.groupby(['seq_id', 'category', 'image_id']).size().groupby(level=[0, 1]).max().to_dict()
    return {s: max(1, int(most.get((s, kind.get(lab, 'animal')), 0))) for s, lab in seq.label.items() if lab != 0}

@pytest.mark.parametrize('rule', ['max_frame', 'mode_frame', 'species_max', 'tracks'])
@pytest.mark.parametrize('vote', ['majority', 'mean_prob'])
def test_seq_preds_on_generated_set(generated, vote, rule):
    "Every sequence once, its decided label among its rows, counts >= 0, empty sequences exactly (0, 0): on the benchmark's set."
    d = generated
    seq = decide_sequences(d['preds'], d['dets'], d['images'], d['categories'], d['probs'], VoteConfig(rule=vote))
    sp = count_sequences(seq, d['dets'], d['images'], d['categories'], d['crop_probs'], d['crops'], CountConfig(rule=rule))
    assert set(sp.seq_id) == set(d['images'].seq_id) and not sp.duplicated(['seq_id', 'category_id']).any()
    assert (sp['count'] >= 0).all() and sp['count'].dtype.kind == 'i'
    assert seq.source.str.startswith('detector:').any() and (seq.label == 0).any() and (seq.label != 0).any() # the set exercises the rules
    rows = sp.groupby('seq_id').category_id.agg(list)
    empty = seq.index[seq.label == 0]
    assert (rows[empty].map(len) == 1).all() and (sp.set_index('seq_id').loc[empty, ['category_id', 'count']] == 0).all().all()
    ne = seq[seq.label != 0]
    assert not any(0 in rows[s] for s in ne.index) and (sp[sp.seq_id.isin(ne.index)].groupby('seq_id')['count'].sum() >= 1).all()
    top = sp.set_index(['seq_id', 'category_id'])['count']
    if rule in ('max_frame', 'mode_frame'): # label rules: the decided label is counted, at least min_count (species rules may move every box to another species)
        assert (top.reindex(list(zip(ne.index, ne.label))) >= 1).all()
    if rule == 'max_frame': assert {s: int(top[s, l]) for s, l in ne.label.items()} == _max_frame_by_hand(seq, d['dets'], d['images'], d['categories'], .8)

def test_tracks_bound_by_frames_and_boxes(generated):
    "At the same confidence and without crops, tracks count at least the most boxes of any frame and at most all boxes."
    d = generated
    seq = decide_sequences(d['preds'], d['dets'], d['images'], d['categories'], d['probs'])
    cfg = dict(conf=.5, min_count=0)
    b = count_boxes(seq, d['dets'], d['images'], d['categories'], cfg=CountConfig(rule='tracks', **cfg))
    tr = count_tracks(b, CountConfig(rule='tracks', **cfg))
    assert len(tr) > 100 and tr.index.equals(count_max_frame(b, 'species').index)
    assert (tr >= count_max_frame(b, 'species')).all() and (tr <= b.groupby(['seq_id', 'species']).size()).all()
    assert (tr < b.groupby(['seq_id', 'species']).size()).any() # some boxes were linked

def test_submissions_of_generated_set(generated, tmp_path):
    d = generated
    sp = predict_sequences(d['preds'], d['dets'], d['images'], d['categories'], d['probs'], d['crop_probs'], d['crops'])
    s21 = submission_2021(sp, sequences_to_submit(d['images']), class_vocab(d['categories']))
    assert len(s21) == 600 and s21.shape[1] == 200 and s21.iloc[:, 1:].to_numpy().sum() == sp['count'].sum()
    s20 = submission_2020(seq_pred_labels(sp), d['images'])
    assert (s20.Id == d['images'].image_id).all()
    assert read_submission(write_submission(s21, tmp_path/'s21.csv')).shape == (600, 199)

def test_blocks_of_sequences_change_nothing(generated, monkeypatch):
    "Every stage cut into blocks of ~60 rows (dozens of blocks of whole sequences) gives the very same tables as in one block."
    import iwildcam_nb.sequences as S
    from iwildcam_nb.counts import COUNT_RULES
    d = generated
    def tables():
        out = []
        for vote in ('majority', 'mean_prob'):
            seq = decide_sequences(d['preds'], d['dets'], d['images'], d['categories'], d['probs'], VoteConfig(rule=vote))
            sps = [count_sequences(seq, d['dets'], d['images'], d['categories'], d['crop_probs'], d['crops'], CountConfig(rule=r))
                   for r in COUNT_RULES]
            out += [seq, *sps, submission_2021(sps[0], sequences_to_submit(d['images']), class_vocab(d['categories'])),
                    submission_2020(seq_pred_labels(sps[0]), d['images'])]
        return out
    whole = tables()
    monkeypatch.setattr(S, 'SEQ_BLOCK', 60)
    assert len(S.seq_blocks(np.arange(len(d['dets'])))) > 20
    for a, b in zip(tables(), whole): pd.testing.assert_frame_equal(a, b, check_exact=True)

def test_benchmark_runs_small():
    "benchmarks/bench_aggregate.py at 1/100 size, scales 1 and 2: it runs, checks its output and prints the table and growth."
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'bench_aggregate.py'), '--fraction', '0.01', '--scales', '1,2', '--repeat', '1',
                        '--rule', 'all', '--seq-block', '300'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for s in ('identical to unblocked', 'vote:mean_prob', 'count:species_max', 'write 2021', 'total', 'growth: total 2x/1x', 'no verdict'): assert s in r.stdout

def test_benchmark_primitives_small():
    "bench_aggregate.py --primitives: one row per numpy building block, a time per scale and the growth, all positive."
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'bench_aggregate.py'), '--primitives', '--fraction', '0.01', '--scales', '1,2'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [l for l in r.stdout.splitlines()[2:] if l.strip()]
    assert [l[:30].strip() for l in rows] == ['sum (sequential read)', 'copy', 'gather in random order', 'bincount of codes',
                                             'scatter-add (np.add.at)', 'radix argsort, int16', 'fill fresh memory (25 B/row)']
    assert all(len(l.split()[-3:]) == 3 and all(float(x) > 0 for x in l.split()[-3:]) for l in rows)
