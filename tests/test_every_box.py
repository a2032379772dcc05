"""Every box answered (issue 16): a two-species sequence of the embedded data keeps both species, each with its own count, from the crop probabilities through vote, count, `box_preds` and the SpeciesNet 5.x, sequences and MegaDetector files.

The model outputs here are SIMULATED and always right (`test_utils.simulate_probs`, acc=1): what is tested is the answer chain
carrying two species per sequence to every output, not a model's accuracy (the demo's `evaluation.csv` measures that).
Sequences have 3-5 frames: by default (`CountConfig.min_species_boxes=2`) a second species needs two boxes, so one
box of it in a one-frame sequence is not enough."""
import json
import pandas as pd
import pytest
from iwildcam_nb.sample import make_sample, read_sample
from iwildcam_nb.crops import select_crops
from iwildcam_nb.vocab import class_vocab
from iwildcam_nb.ensemble import EnsembleConfig
from iwildcam_nb.sequences import VoteConfig
from iwildcam_nb.counts import CountConfig
from iwildcam_nb.simulate import SampleConfig, DetectorSim
from iwildcam_nb.test_utils import simulate_probs, box_truth
from iwildcam_nb.pipeline import answer_sequences, write_answers, BOX_SOURCES
from iwildcam_nb.formats import read_speciesnet, check_md_format

TINY = dict(n_train_locations=2, n_test_locations=1, seqs_per_location=4, min_frames=3, max_frames=5, width=96, height=72,
            two_species_frac=1., empty_frac=0.)

@pytest.fixture(scope='module')
def answered(tmp_path_factory):
    "The tiny two-species sample answered by always-right simulated models, and its files written."
    tmp = tmp_path_factory.mktemp('every_box')
    d = read_sample(make_sample(tmp/'data', seed=0, cfg=SampleConfig(md=DetectorSim(rock_split=None)), **TINY))
    ims, cats = d['images'].query("split == 'test'"), d['categories'] # answered as a run answers its test set
    dets = d['detections'][d['detections'].image_id.isin(ims.image_id)]
    V = class_vocab(cats)
    crops = select_crops(dets)
    crop = simulate_probs(box_truth(crops, d['boxes']).set_axis(crops.crop_id).rename_axis('crop_id'), V, acc=1.)
    first = d['labels'].drop_duplicates('image_id').set_index('image_id').category_id.loc[ims.image_id]
    full = simulate_probs(first, V, acc=1., seed=1)
    res = answer_sequences(ims, dets, full, crop, crops, cats, EnsembleConfig(), VoteConfig(), CountConfig())
    fails = pd.DataFrame(columns=['image_id', 'stage', 'reason'])
    paths = write_answers(tmp/'out', ims, dets, res, crop, cats, fails)
    return {**d, 'images': ims}, res, paths

def two_species(counts:pd.DataFrame)->dict:
    "seq_id -> {species: true count} of the test sequences with two species."
    c = counts[(counts.category_id > 0) & (counts.split == 'test')]
    return {s: dict(zip(g.category_id, g['count'])) for s, g in c.groupby('seq_id') if len(g) == 2}

def test_both_species_counted_apart(answered):
    d, res, _ = answered
    truth = two_species(d['counts'])
    assert truth, 'the sample has no two-species sequence'
    sp = res.seq_preds[res.seq_preds['count'] > 0]
    got = {s: dict(zip(g.category_id, g['count'])) for s, g in sp.groupby('seq_id')}
    both = [s for s, t in truth.items() if set(got.get(s, {})) == set(t)]
    assert len(both) == len(truth), f'two-species sequences not answered with both: truth {truth}, got {got}'
    for s in both: # each species its own count, near its truth (the count rule is not perfect)
        assert all(abs(got[s][k] - n) <= 1 for k, n in truth[s].items()), (s, got[s], truth[s])

def test_every_counted_box_answered_with_its_species(answered):
    d, res, _ = answered
    bp = res.box_preds
    assert set(bp.source) <= set(BOX_SOURCES) and (bp.source == BOX_SOURCES[0]).any() # some boxes by their crop
    for s, t in two_species(d['counts']).items():
        assert set(bp[bp.seq_id == s].label) <= set(t) # a box answers a species of its sequence
    assert set(zip(bp.seq_id, bp.label)) <= set(zip(res.seq_preds.seq_id, res.seq_preds.category_id))

def test_files_carry_every_box(answered):
    d, res, paths = answered
    ims, cats = d['images'], d['categories']
    names = dict(zip(cats.category_id, cats.name))
    sn = json.loads(paths['speciesnet'].read_text())
    assert sn['info']['format_version'] == '20261015'
    back = read_speciesnet(paths['speciesnet'], ims, names)
    bx = back.box_preds.dropna(subset=['label'])
    for s, t in two_species(d['counts']).items(): # the file answers each box of the sequence by itself
        if set(res.box_preds[res.box_preds.seq_id == s].label) == set(t):
            assert set(bx[bx.seq_id == s].label.astype(int)) >= set(t), s
    ours = res.image_preds.set_index('image_id').label
    theirs = back.image_preds.dropna(subset=['label']).set_index('image_id').label.astype(int)
    assert (theirs == ours.reindex(theirs.index)).all() # the photo's answer is read back first
    seqs = pd.read_csv(paths['sequences'])
    assert len(seqs) >= len(res.seq_preds[res.seq_preds['count'] > 0])
    check_md_format(json.loads(paths['megadetector'].read_text()), paths['megadetector'])
    assert pd.read_csv(paths['megadetector'].parent/'preds'/'box_preds.csv').shape == res.box_preds.shape
