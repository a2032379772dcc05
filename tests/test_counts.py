"""The default counting rule `linked` on real-like motion: one animal that jumps across the frame, leaves and comes
back is one; crossing animals are never fewer than one frame's boxes; looks (crop features) split two animals of one
species that are never in view together; and the generator's realistic motion (`MotionSim`) does what it says."""
from dataclasses import replace
import numpy as np, pandas as pd
from iwildcam_nb.counts import CountConfig, count_linked, count_max_frame, count_sequences, count_tracks
from iwildcam_nb.simulate import (DetectorSim, Individual, MotionSim, SampleConfig, SeqPlan, make_locations,
                                  plan_sequences, realistic_path, render_sequence)

CATS = pd.DataFrame({'category_id': [0, 3], 'name': ['empty', 'agouti']})

def boxes(xs, seq='s'):
    "One 8%-wide box per frame at each x (None: out of view)."
    return pd.DataFrame([dict(seq_id=seq, species=3, label=3, image_id=f'{seq}{t}', frame_num=t, x=x, y=.5, w=.08, h=.08)
                         for t, x in enumerate(xs) if x is not None])

def tables(b):
    "count_sequences' inputs for boxes `b` of sequence(s) with label 3."
    dets = b.assign(det_idx=b.groupby('image_id').cumcount(), category='animal', conf=b.get('conf', .9))
    images = b[['image_id', 'seq_id', 'frame_num']].drop_duplicates('image_id')
    seq = pd.DataFrame({'label': 3, 'score': 1., 'source': 'test'}, index=pd.Index(b.seq_id.unique(), name='seq_id'))
    return seq, dets, images

def test_jumping_animal_that_leaves_and_returns_is_one():
    b = boxes([.1, .85, .2, .2, None, None, .75, .15, .9, .88, .3, .6])
    assert count_linked(b).iloc[0] == 1 and count_tracks(b).iloc[0] >= 4
    seq, dets, images = tables(b)
    sp = count_sequences(seq, dets, images, CATS) # the default rule, through the public path
    assert CountConfig().rule == 'linked' and sp['count'].tolist() == [1]

def test_generated_single_animal_counts_one():
    "A generated MotionSim path with a jump over half the frame and frames out of view, drawn and detected: one."
    c, n = SampleConfig(), 12
    o = Individual('agouti', .5, .7, .05, 0., 1., 1, 0)
    for s in range(200):
        p = realistic_path(o, n, MotionSim(), np.random.default_rng(s))
        xs = np.array([x for x, _ in p])
        seen = (xs >= 0) & (xs <= 1)
        if (~seen[1:-1]).any() and np.abs(np.diff(xs))[seen[1:] & seen[:-1]].max(initial=0) > .5: break
    plan = SeqPlan('train', 0, 0, 'g', pd.Timestamp('2019-06-01 12:00').to_pydatetime(), n, False, 'animal', [replace(o, path=p)], 1., 0)
    frames = render_sequence(plan, make_locations(c)[0], replace(c, md=DetectorSim(split_prob=0)))
    b = pd.DataFrame([dict(seq_id='g', image_id=f'g{t}', frame_num=t, conf=d['conf'], **dict(zip('xywh', d['bbox'])))
                      for t, (_, _, dets) in enumerate(frames) for d in dets])
    seq, dets, images = tables(b)
    sp = count_sequences(seq, dets, images, CATS)
    assert sp['count'].tolist() == [1]
    assert max(len(v) for _, v, _ in frames) == 1 and 0 in [len(v) for _, v, _ in frames][1:-1]

def test_never_below_one_frames_boxes_and_never_above_all_boxes():
    rng = np.random.default_rng(0)
    b = pd.DataFrame(dict(seq_id=rng.integers(0, 30, 400), species=rng.integers(0, 2, 400), frame_num=rng.integers(0, 8, 400),
                          x=rng.random(400)*.9, y=rng.random(400)*.9, w=.1, h=.1)).assign(label=0)
    for cfg in (CountConfig(), CountConfig(new_cost=.2), CountConfig(new_cost=-1.)):
        n = count_linked(b, cfg)
        assert (n >= count_max_frame(b, 'species').reindex(n.index)).all()
        assert (n <= b.groupby(['seq_id', 'species']).size().reindex(n.index)).all()
    assert (count_linked(b, CountConfig(new_cost=-1.)) == b.groupby(['seq_id', 'species']).size()).all()
    cross = pd.concat([boxes([.1 + .15*t for t in range(6)]), boxes([.85 - .15*t for t in range(6)])])
    assert count_linked(cross).iloc[0] == 2

def test_looks_split_two_animals_never_in_view_together():
    b = boxes([.1, .3, .5, .7, .1, .3, .5, .7, .9, .7])
    seq, dets, images = tables(b)
    crops = dets[['image_id', 'det_idx']].assign(crop_id=[f'c{i}' for i in range(len(dets))])
    feats = pd.DataFrame([[1., 0.]]*4 + [[0., 1.]]*6, index=crops.crop_id)
    assert count_sequences(seq, dets, images, CATS)['count'].tolist() == [1]
    assert count_sequences(seq, dets, images, CATS, crops=crops, crop_feats=feats)['count'].tolist() == [2]
    same = pd.DataFrame([[.6, .8]]*10, index=crops.crop_id)
    assert count_sequences(seq, dets, images, CATS, crops=crops, crop_feats=same)['count'].tolist() == [1]

def test_motion_sim_and_smooth_default():
    o = Individual('agouti', .5, .6, .05, 0., 1., 1, 0)
    xs = np.array([x for x, _ in realistic_path(o, 60, MotionSim(), np.random.default_rng(1))])
    seen = (xs >= 0) & (xs <= 1)
    assert np.abs(np.diff(xs))[seen[1:] & seen[:-1]].max() > .5 and (~seen).any() and seen[-20:].any() and (np.diff(xs) == 0).any()
    c = SampleConfig(n_train_locations=2, n_test_locations=1, seqs_per_location=4)
    locs = make_locations(c)
    smooth, real = plan_sequences(locs, c), plan_sequences(locs, c, motion=MotionSim())
    assert all(o.path is None for p in smooth for o in p.individuals) # the default sample's plans: straight walks
    assert all(len(o.path) == p.n_frames for p in real for o in p.individuals)
    assert [replace(p, individuals=[]) for p in smooth] == [replace(p, individuals=[]) for p in real]
