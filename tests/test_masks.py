"""DeepMAC instance masks: the sample's PNGs follow the iWildCam 2021 format exactly (read here with PIL and numpy
only, not the package's loader), the loader stops on (or records) every fault it names, and the `masks` counting
rule does not count a sliver box as a second animal."""
import json
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from PIL import Image
from iwildcam_nb.core import InputError
from iwildcam_nb.counts import CountConfig, count_linked, count_masks, count_sequences
from iwildcam_nb.masks import MASK_COLS, load_instance_masks, read_instance_mask
from iwildcam_nb.sample import MASKS_DIR, SAMPLE_FILES, make_sample, read_sample
from iwildcam_nb.simulate import MaskSim, simulate_deepmac

SMALL = dict(n_train_locations=2, n_test_locations=1, seqs_per_location=4, max_frames=4, width=160, height=120)

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp('masks')/'s', seed=5, **SMALL)

def test_sample_masks_follow_the_format(sample):
    md = json.loads((sample/SAMPLE_FILES['megadetector']).read_text())
    photos = {i['id']: (s, i) for s, k in [('train', 'train'), ('test', 'test')]
              for i in json.loads((sample/SAMPLE_FILES[k]).read_text())['images']}
    with_dets = {r['id'] for r in md['images'] if r['detections']}
    assert {p.stem for p in (sample/MASKS_DIR).iterdir()} == with_dets # one per image with detections, no other
    assert {p.suffix for p in (sample/MASKS_DIR).iterdir()} == {'.png'}
    n_px = []
    for r in md['images']:
        if not r['detections']: continue
        with Image.open(sample/MASKS_DIR/f"{r['id']}.png") as im:
            assert im.format == 'PNG' and im.mode == 'L' and len(im.getbands()) == 1
            a = np.asarray(im)
        split, rec = photos[r['id']]
        with Image.open(sample/split/rec['file_name']) as ph: assert im.size == ph.size == (rec['width'], rec['height'])
        H, W = a.shape
        assert a.min() >= 0 and a.max() <= len(r['detections'])
        for k, d in enumerate(r['detections'], 1): # pixels of index k lie inside box k (1 px rounding)
            ys, xs = np.nonzero(a == k)
            n_px.append(len(xs))
            if not len(xs): continue
            x, y, w, h = d['bbox']
            assert xs.min() >= x*W - 1 and xs.max() + 1 <= (x + w)*W + 1, (r['id'], k)
            assert ys.min() >= y*H - 1 and ys.max() + 1 <= (y + h)*H + 1, (r['id'], k)
    assert np.mean(np.array(n_px) > 0) > .9 # nearly every box has a mask

def test_overlap_goes_to_the_more_confident():
    "Two boxes on one animal (a split), listed less sure first: the overlap's pixels go to the more confident."
    own = np.full((20, 30), -1, np.int16); own[5:15, 5:25] = 0
    dets = [dict(conf=.6, bbox=[5/30, 5/20, 12/30, 10/20]), dict(conf=.9, bbox=[13/30, 5/20, 12/30, 10/20])]
    m = simulate_deepmac(own, dets, [(0,), (0,)], np.random.default_rng(0), MaskSim(edge=0, edge_noise=0))
    assert (m[5:15, 13:17] == 2).all() and (m[5:15, 5:13] == 1).all() and (m[own < 0] == 0).all()

def test_sample_masks_load_clean(sample):
    d = read_sample(sample)
    dm, fails = load_instance_masks(sample/MASKS_DIR, d['detections'], d['images'])
    assert fails.empty and len(dm) == len(d['detections']) and set(MASK_COLS) <= set(dm.columns)
    assert dm.mask_fill.notna().all() and (dm.mask_px >= 0).all()
    assert (dm.mask_prev >= 0).any() and dm.mask_iou.between(0, 1).all()

def bad_set(root:Path)->dict:
    "A good mask and one per fault the loader names: image_id -> expected message (None: good)."
    good = np.zeros((12, 16), np.uint8); good[2:6, 3:9] = 1; good[5:10, 8:14] = 2
    arrays = dict(good=good, out_of_range=np.where(good == 2, 3, good).astype(np.uint8), small=good[:10, :14],
                  rgb=np.stack([good]*3, -1), la=np.stack([good, good], -1))
    for k, a in arrays.items(): Image.fromarray(a).save(root/f'{k}.png')
    (root/'not_png.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    return dict(good=None, out_of_range='value 3, but the image has 2 detections', small='14x10 but the photo is 16x12',
                rgb='RGB: an instance mask is single-channel', la='LA: an instance mask is single-channel',
                not_png='not a readable image', missing='missing: the image has detections but no instance mask')

def tables(ids):
    ims = pd.DataFrame({'image_id': ids, 'width': 16, 'height': 12})
    dets = pd.DataFrame([dict(image_id=i, det_idx=k, x=.1 + .4*k, y=.1, w=.45, h=.8) for i in ids for k in (0, 1)])
    return dets, ims

def test_loader_errors_on_the_hand_made_set(tmp_path):
    want = bad_set(tmp_path)
    for iid, msg in want.items():
        dets, ims = tables([iid])
        if msg is None:
            dm, fails = load_instance_masks(tmp_path, dets, ims)
            assert fails.empty and dm.mask_px.tolist() == [23, 30] # box 2 took one pixel of 1
            continue
        with pytest.raises(InputError, match=msg) as e: load_instance_masks(tmp_path, dets, ims)
        assert f'{iid}.png' in str(e.value) # the message names the file
    dets, ims = tables(list(want))
    dm, fails = load_instance_masks(tmp_path, dets, ims, bad='skip') # recorded, not raised
    assert sorted(fails.image_id) == sorted(k for k, m in want.items() if m) and set(fails.stage) == {'masks'}
    for iid, msg in want.items():
        if msg: assert msg in fails.set_index('image_id').reason[iid]
    assert dm.mask_fill.notna().tolist() == [i == 'good' for i in dets.image_id]
    arr = {'neg': np.full((12, 16), -1, np.int32), 'flat': np.zeros((12, 16, 1), np.uint8)} # in-memory masks
    with pytest.raises(InputError, match='value -1'): read_instance_mask(arr['neg'], 2, (16, 12), 'neg')
    with pytest.raises(InputError, match='2-D integers'): read_instance_mask(arr['flat'], 2, (16, 12), 'flat')

def test_masks_rule_does_not_count_a_sliver_twice():
    "One animal per frame, and in frame 2 a second box on it whose mask is a sliver: one, not two."
    b = pd.DataFrame([dict(seq_id='s', species=3, label=3, image_id=f'f{t}', det_idx=0, frame_num=t, x=.1*t, y=.4,
                           w=.2, h=.2, conf=.9, mask_fill=.45) for t in range(4)])
    dup = b[b.frame_num == 2].assign(det_idx=1, x=lambda d: d.x + .05, conf=.6, mask_fill=.02)
    bb = pd.concat([b, dup], ignore_index=True)
    assert count_linked(bb).iloc[0] == 2 and count_masks(bb).iloc[0] == 1
    assert count_masks(bb.drop(columns='mask_fill')).iloc[0] == 2 # no masks: as `linked`
    seq = pd.DataFrame({'label': 3, 'score': 1., 'source': 't'}, index=pd.Index(['s'], name='seq_id'))
    cats = pd.DataFrame({'category_id': [0, 3], 'name': ['empty', 'agouti']})
    bb = bb.assign(category='animal')
    ims = bb[['image_id', 'seq_id', 'frame_num']].drop_duplicates('image_id')
    sp = lambda rule: count_sequences(seq, bb, ims, cats, cfg=CountConfig(rule=rule))['count'].tolist()
    assert sp('masks') == [1] and sp('linked') == [2]
