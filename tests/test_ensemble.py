"""Ensemble stage: bad input gives an InputError naming table and row; fallback to the full model iff no crop passes
the confidence cut; crop rules; the module stays free of torch and fastai."""
import subprocess, sys
import numpy as np, pandas as pd
import pytest
from iwildcam_nb.core import InputError
from iwildcam_nb.ensemble import EnsembleConfig, ensemble_probs, label_images
from iwildcam_nb.test_utils import simulate_probs, box_truth

VOCAB = [0, 3, 10]

def tables(seed=0, n=40):
    "Random full probs for n images, 0-3 crops each with random confidences, crop probs, images in 8 sequences."
    rng = np.random.default_rng(seed)
    ids = [f'im{i}' for i in range(n)]
    full = pd.DataFrame(rng.dirichlet(np.ones(3), n), index=pd.Index(ids, name='image_id'), columns=VOCAB)
    rows = [(f'{i}_{k:03d}', i, k, c) for i in ids for k, c in enumerate(sorted(rng.uniform(0, 1, rng.integers(0, 4)), reverse=True))]
    crops = pd.DataFrame(rows, columns=['crop_id', 'image_id', 'det_idx', 'conf'])
    crop = pd.DataFrame(rng.dirichlet(np.ones(3), len(crops)), index=pd.Index(crops.crop_id, name='crop_id'), columns=VOCAB)
    images = pd.DataFrame({'image_id': ids, 'seq_id': [f's{i % 8}' for i in range(n)]})
    return full, crop, crops, images

@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('thr', [0.0, 0.3, 0.7])
def test_fallback_iff_no_crop_above_threshold(seed, thr):
    full, crop, crops, images = tables(seed)
    probs, src = ensemble_probs(full, crop, crops, VOCAB, EnsembleConfig(crop_conf=thr))
    has = set(crops[crops.conf >= thr].image_id)
    assert {i for i in src.index if src[i] == 'ensemble'} == has
    fo = src.index[src == 'full only']
    np.testing.assert_allclose(probs.loc[fo].to_numpy(), full.loc[fo].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1).to_numpy(), 1, atol=1e-5)

def test_weights_and_max_conf_rule():
    full, crop, crops, images = tables(5)
    probs, src = ensemble_probs(full, crop, crops, VOCAB, EnsembleConfig(w_full=.4, w_crop=.6))
    for i in src.index[src == 'ensemble']:
        c = crops[(crops.image_id == i) & (crops.conf >= .3)].sort_values('conf').crop_id.iloc[-1]
        np.testing.assert_allclose(probs.loc[i].to_numpy(), .4*full.loc[i].to_numpy() + .6*crop.loc[c].to_numpy(), rtol=1e-5)

def test_conf_mean_rule_weights_by_confidence():
    full, crop, crops, images = tables(6)
    probs, src = ensemble_probs(full, crop, crops, VOCAB, EnsembleConfig(crop_rule='conf_mean', w_full=0, w_crop=1))
    for i in src.index[src == 'ensemble']:
        c = crops[(crops.image_id == i) & (crops.conf >= .3)]
        want = (crop.loc[c.crop_id].to_numpy()*c.conf.to_numpy()[:, None]).sum(0)/c.conf.sum()
        np.testing.assert_allclose(probs.loc[i].to_numpy(), want, rtol=1e-5)

def test_missing_class_is_zero_filled():
    full, crop, crops, images = tables(1)
    probs, _ = ensemble_probs(full, crop.drop(columns=10).pipe(lambda d: d.div(d.sum(axis=1), axis=0)), crops, VOCAB, EnsembleConfig(w_full=0, w_crop=1))
    has = crops[crops.conf >= .3].image_id.unique()
    assert (probs.loc[has, 10] == 0).all()

@pytest.mark.parametrize('mutate, match', [
    (lambda f, c, cr, im: (f*1.5, c, cr, im), "full probs: row 'im0': probabilities sum to"),
    (lambda f, c, cr, im: (f, c*0.5, cr, im), "crop probs: row"),
    (lambda f, c, cr, im: (f.assign(**{'42': 0.}), c, cr, im), 'category 42 is not in the vocabulary'),
    (lambda f, c, cr, im: (f, c, cr.assign(image_id=cr.image_id.where(cr.index > 0, 'ghost')), im), "crops: row '.*': image 'ghost' is unknown"),
    (lambda f, c, cr, im: (f, c, cr.iloc[1:], im), "crop probs: row '.*': crop id '.*' is not in the crops table"),
    (lambda f, c, cr, im: (f, c, cr, im.iloc[1:]), "full probs: row 'im0': image 'im0' is not in the images table"),
    (lambda f, c, cr, im: (f, c, pd.concat([cr, cr.iloc[:1]]), im), 'appears twice'),
    (lambda f, c, cr, im: (f, c, cr.drop(columns='conf'), im), 'crops: conf: required column is missing'),
])
def test_bad_input(mutate, match):
    f, c, cr, im = mutate(*tables(2))
    with pytest.raises(InputError, match=match): ensemble_probs(f, c, cr, VOCAB, images=im)

def test_label_images_bad_input():
    full, crop, crops, images = tables(3)
    with pytest.raises(InputError, match="probs: row 'im0': image 'im0' is not in the images table"): label_images(full, images.iloc[1:])
    with pytest.raises(InputError, match="images: row 'im5': seq_id is missing"):
        label_images(full, images.assign(seq_id=images.seq_id.where(images.image_id != 'im5')))
    with pytest.raises(InputError, match='probs: row'): label_images(full*2, images)

def test_label_images_argmax():
    full, crop, crops, images = tables(4)
    ip = label_images(full, images)
    assert ip.label.tolist() == full.idxmax(axis=1).tolist()
    np.testing.assert_allclose(ip.score.to_numpy(), full.max(axis=1).to_numpy(), rtol=1e-6)
    assert (ip.seq_id.to_numpy() == images.seq_id.to_numpy()).all()

def test_bad_config():
    with pytest.raises(InputError, match='sum to 1'): EnsembleConfig(w_full=.3, w_crop=.3)
    with pytest.raises(InputError, match='crop_rule'): EnsembleConfig(crop_rule='vote')

def test_simulate_probs_accuracy_and_box_truth():
    truth = pd.Series(np.random.default_rng(0).choice(VOCAB, 3000))
    for acc in (.5, .9):
        assert abs((simulate_probs(truth, VOCAB, acc=acc).idxmax(axis=1) == truth).mean() - acc) < .04
    dets = pd.DataFrame({'image_id': ['a', 'b'], 'x': [.1, .1], 'y': [.1, .1], 'w': [.2, .2], 'h': [.2, .2]})
    boxes = pd.DataFrame({'image_id': ['a', 'b'], 'category_id': [3, 10], 'x': [.1, .5], 'y': [.1, .5], 'w': [.2, .2], 'h': [.2, .2]})
    assert box_truth(dets, boxes).tolist() == [3, 0]

def test_no_heavy_imports():
    code = 'import sys, iwildcam_nb.ensemble, iwildcam_nb.sequences, iwildcam_nb.counts; print(sorted(m for m in ("torch", "fastai") if m in sys.modules))'
    assert subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip() == '[]'
