"""The interop outputs: MegaDetector batch JSON read back by our loader, the format check on good and broken files,
failures, the per-sequence table and the SpeciesNet-style JSON."""
import copy, json
import numpy as np, pandas as pd
import pytest
from iwildcam_nb.core import InputError, read_json
from iwildcam_nb.megadetector import load_megadetector
from iwildcam_nb.test_utils import simulate_probs
from iwildcam_nb.outputs import (DETECTION_CATEGORIES, OUTPUT_FILES, check_md_format, md_classified, sequence_table,
                                 speciesnet_predictions, write_outputs)
from iwildcam_nb.crops import crop_id
from iwildcam_nb.sample import make_sample, read_sample
from iwildcam_nb.vocab import class_vocab

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    "The embedded sample with simulated image and crop probabilities, image_preds and seq_preds (no model)."
    s = read_sample(make_sample(tmp_path_factory.mktemp('sample'), seed=0, seqs_per_location=2))
    vocab = class_vocab(s['categories'])
    truth = s['labels'].set_index('image_id').category_id
    probs = simulate_probs(truth, vocab).rename_axis('image_id')
    d = s['detections'][s['detections'].conf >= 0.3]
    cids = pd.Index([crop_id(i, j) for i,j in zip(d.image_id, d.det_idx)], name='crop_id')
    crop_probs = simulate_probs(pd.Series(truth.reindex(d.image_id).to_numpy(), index=cids), vocab, seed=1)
    a = probs.to_numpy()
    ip = pd.DataFrame({'image_id': probs.index, 'label': np.asarray(vocab)[a.argmax(1)], 'score': a.max(1), 'source': 'simulated'})
    ip['seq_id'] = ip.image_id.map(s['images'].set_index('image_id').seq_id)
    sp = s['counts'][['seq_id', 'category_id', 'count']].assign(score=1.0, source='truth')
    names = dict(zip(s['categories'].category_id, s['categories'].name))
    failed = s['images'].image_id.iloc[5]
    fails = pd.DataFrame({'image_id': [failed], 'stage': ['resize'], 'reason': ['truncated JPEG']})
    return dict(s, probs=probs, crop_probs=crop_probs, image_preds=ip, seq_preds=sp, names=names, failures=fails, failed=failed)

def test_written_file_reads_back(sample, tmp_path):
    "Our loader reads the written MegaDetector file back to the same boxes, confidences and categories."
    s = sample
    paths = write_outputs(tmp_path, s['images'], s['detections'], s['image_preds'], s['seq_preds'], s['probs'],
                          s['crop_probs'], s['names'], info={'detector': 'simulated'})
    assert {k: p.name for k,p in paths.items()} == OUTPUT_FILES and all(p.exists() for p in paths.values())
    back = load_megadetector(paths['megadetector'], images=s['images'], unmatched='drop')
    want = s['detections'].sort_values(['image_id', 'det_idx']).reset_index(drop=True)
    got = back.sort_values(['image_id', 'det_idx']).reset_index(drop=True)
    assert got.image_id.tolist() == want.image_id.tolist()
    assert got.category.tolist() == want.category.tolist()
    np.testing.assert_allclose(got[['conf', 'x', 'y', 'w', 'h']].to_numpy(), want[['conf', 'x', 'y', 'w', 'h']].to_numpy(), atol=1e-4)
    d = read_json(paths['megadetector'])
    assert d['info']['detector'] == 'simulated' and d['info']['format_version'] == '1.4'
    assert len(d['images']) == len(s['images'])
    n_cls = sum('classifications' in b for o in d['images'] for b in o['detections'])
    assert n_cls == len(s['crop_probs']) # exactly the boxes that have a crop

def test_classifications_are_top_k_of_the_crop(sample):
    "A box's classifications are its crop's most probable classes, descending, ids as strings."
    s = sample
    md = md_classified(s['images'], s['detections'], s['crop_probs'], s['names'], top_k=2)
    file_to_id = dict(zip(s['images'].file_name, s['images'].image_id))
    checked = 0
    for o in md['images']:
        for j, b in enumerate(o['detections']):
            if 'classifications' not in b: continue
            row = s['crop_probs'].loc[crop_id(file_to_id[o['file']], j)]
            best = row.sort_values(ascending=False, kind='stable').index[:2]
            assert [c for c,_ in b['classifications']] == [str(c) for c in best]
            assert b['classifications'][0][1] == pytest.approx(row.max(), abs=1e-4)
            checked += 1
    assert checked == len(s['crop_probs'])

def test_check_passes_ours_and_real(sample, speciesnet_dir):
    s = sample
    md = md_classified(s['images'], s['detections'], s['crop_probs'], s['names'], s['failures'])
    assert check_md_format(md) is md
    real = read_json(speciesnet_dir/'md_results_mdv5a.json')
    assert check_md_format(real, 'md_results_mdv5a.json') is real

BROKEN = [ # (change to a good file, field the error must name)
    (lambda d: d['info'].pop('format_version'), 'info.format_version'),
    (lambda d: d['images'][0]['detections'][0].update(bbox=[0.1, 0.2, 0.3]), 'images[0].detections[0].bbox'),
    (lambda d: d['images'][0]['detections'][1].update(conf=1.5), 'images[0].detections[1].conf'),
    (lambda d: d['images'][0]['detections'][0].update(category='9'), 'images[0].detections[0].category'),
    (lambda d: d['images'][0]['detections'][0]['classifications'].insert(0, ['999', 0.99]), 'images[0].detections[0].classifications[0][0]'),
    (lambda d: d.update(images={'a.jpg': []}), 'images'),
    (lambda d: d['detection_categories'].update(x='bird'), 'detection_categories.x'),
    (lambda d: d['images'][1]['detections'][0].update(bbox=[0.9, 0.1, 0.3, 0.1]), 'images[1].detections[0].bbox'),
]

@pytest.mark.parametrize('change,field', BROKEN)
def test_check_names_the_field(change, field):
    "Each broken copy of a valid file is refused with the broken field named."
    good = md_classified(pd.DataFrame({'image_id': ['a', 'b'], 'file_name': ['a.jpg', 'b.jpg']}),
                         pd.DataFrame({'image_id': ['a', 'a', 'b'], 'det_idx': [0, 1, 0], 'category': ['animal', 'person', 'vehicle'],
                                       'conf': [0.9, 0.2, 0.5], 'x': 0.1, 'y': 0.1, 'w': 0.5, 'h': 0.5}),
                         pd.DataFrame([[0.7, 0.3]], columns=[0, 3], index=[crop_id('a', 0)]), {0: 'empty', 3: 'agouti'})
    check_md_format(good, 'f.json')
    bad = copy.deepcopy(good); change(bad)
    with pytest.raises(InputError) as e: check_md_format(bad, 'f.json')
    assert e.value.field == field and e.value.path == 'f.json'

def test_real_file_broken_copies(speciesnet_dir):
    "The real MegaDetector file, broken, is refused at the right image."
    real = read_json(speciesnet_dir/'md_results_mdv5a.json')
    i = next(k for k,o in enumerate(real['images']) if o['detections'])
    bad = copy.deepcopy(real); bad['images'][i]['detections'][0]['bbox'] = [0.1, 0.1, 0.1]
    with pytest.raises(InputError, match=rf'images\[{i}\]\.detections\[0\]\.bbox'): check_md_format(bad)

def test_failures_have_null_detections(sample, tmp_path):
    s = sample
    md = md_classified(s['images'], s['detections'], s['crop_probs'], s['names'], s['failures'])
    row = int(np.flatnonzero(s['images'].image_id == s['failed'])[0])
    o = md['images'][row]
    assert o['failure'] == 'resize: truncated JPEG' and o['detections'] is None
    assert all('failure' not in x and isinstance(x['detections'], list) for k,x in enumerate(md['images']) if k != row)
    p = tmp_path/'md.json'; p.write_text(json.dumps(md))
    assert json.loads(p.read_text())['images'][row]['detections'] is None # null in the file

def test_sequence_table_small_case():
    images = pd.DataFrame({'image_id': list('abcd'), 'file_name': [f'{c}.jpg' for c in 'abcd'], 'location': ['2', '2', '1', '1'],
                           'datetime': pd.to_datetime(['2021-03-04 05:06:08', '2021-03-04 05:06:07', None, None]),
                           'seq_id': ['t', 't', 'u', 'u']})
    sp = pd.DataFrame({'seq_id': ['t', 't', 'u'], 'category_id': [10, 3, 0], 'count': [1, 2, 0], 'score': [0.9, 0.9, 0.6],
                       'source': ['vote', 'vote', 'no box: empty']})
    st = sequence_table(sp, images, {0: 'empty', 3: 'agouti', 10: 'ocelot'})
    assert st.seq_id.tolist() == ['u', 't', 't'] # location '1' first
    assert st.start_time.tolist() == ['', '2021-03-04T05:06:07', '2021-03-04T05:06:07'] # earliest frame; unknown = ''
    assert st.species.tolist() == ['empty', 'agouti', 'ocelot']
    assert st.iloc[0][['category_id', 'count', 'n_frames']].tolist() == [0, 0, 2] # the empty sequence keeps its row
    with pytest.raises(InputError, match='category 10 has no name'): sequence_table(sp, images, {0: 'empty', 3: 'agouti'})

def test_speciesnet_json(sample):
    s = sample
    read = s['image_preds'].image_id != s['failed'] # the failed image could not be read: no probabilities, no label
    sn = speciesnet_predictions(s['image_preds'][read], s['images'], s['detections'], s['probs'].drop(index=s['failed']), s['names'], s['failures'])
    preds = sn['predictions']
    assert list(sn) == ['predictions'] and len(preds) == len(s['images'])
    label = s['image_preds'].set_index('image_id').label
    for iid, p in zip(s['images'].image_id, preds):
        if iid == s['failed']:
            assert p['failures'] == ['RESIZE'] and 'prediction' not in p and 'classifications' not in p
            continue
        assert {'filepath', 'classifications', 'detections', 'prediction', 'prediction_score', 'prediction_source', 'model_version'} <= set(p)
        assert p['prediction'] == s['names'][label[iid]]
        assert p['classifications']['classes'][0] == p['prediction'] # simulated image_preds are the probs' argmax
        assert len(p['classifications']['scores']) == 5 and p['classifications']['scores'] == sorted(p['classifications']['scores'], reverse=True)
        assert all(d['category'] in DETECTION_CATEGORIES and d['label'] in ('animal', 'human', 'vehicle') for d in p['detections'])
    json.dumps(sn, allow_nan=False) # strict JSON: no NaN

def test_nothing_written_on_bad_input(sample, tmp_path):
    s = sample
    with pytest.raises(InputError, match='conf'):
        write_outputs(tmp_path, s['images'], s['detections'].assign(conf=2.0), s['image_preds'], s['seq_preds'], s['probs'],
                      s['crop_probs'], s['names'])
    assert not list(tmp_path.iterdir())
