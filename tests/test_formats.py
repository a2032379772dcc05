"""Today's formats end to end on the embedded sample and the real SpeciesNet test photos: SpeciesNet 5.x and
MegaDetector 1.6 files written from our tables, accepted by megadetector-utils' own validator (and its
SpeciesNet-to-MegaDetector converter), read back to the same answers; 4.x read back; one malformed-input test per
reader error."""
import copy
import numpy as np, pandas as pd
import pytest
from iwildcam_nb.core import InputError, write_json
from iwildcam_nb.crops import crop_id
from iwildcam_nb.formats import (SPECIESNET_FORMAT, WHOLE_IMAGE, compare_answers, agreement_by_key, answer_matrix,
                                 class_labels, md_batch_15, read_md_classified, read_speciesnet,
                                 speciesnet5_predictions, validate_md_batch)
from iwildcam_nb.megadetector import load_megadetector
from iwildcam_nb.outputs import speciesnet_predictions
from iwildcam_nb.sample import SAMPLE_FILES
from conftest import simulated_answers

from PIL import ImageFile
_loose = ImageFile.LOAD_TRUNCATED_IMAGES # MegaDetector's import sets it for the whole process: put back below
vbr = pytest.importorskip('megadetector.postprocessing.validate_batch_results')
validate_batch_results = vbr.validate_batch_results
wi = pytest.importorskip('megadetector.utils.wi_taxonomy_utils')
ImageFile.LOAD_TRUNCATED_IMAGES = _loose

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    "The embedded sample (one sequence per location) with simulated crop and image answers, and its taxonomy."
    s = simulated_answers(tmp_path_factory.mktemp('sample'))
    failures = pd.DataFrame({'image_id': [s['images'].image_id.iloc[3]], 'stage': ['resize'], 'reason': ['bad']})
    ip = s['ip'][s['ip'].image_id != failures.image_id[0]]
    tax = pd.read_csv(s['root']/SAMPLE_FILES['taxonomy'], dtype=str, keep_default_na=False)
    names = dict(zip(s['categories'].category_id, s['categories'].name))
    return dict(s, ip=ip, failures=failures, tax=tax, names=names)

def sn5_of(sm, **kw):
    return speciesnet5_predictions(sm['ip'], sm['images'], sm['detections'], sm['probs'], sm['crop_probs'], sm['names'],
                                   sm['failures'], tax=sm['tax'], **kw)

def test_speciesnet5_round_trip(sample, tmp_path):
    sn = sn5_of(sample)
    assert sn['info'] == {'format_version': SPECIESNET_FORMAT}
    write_json(sn, tmp_path/'sn5.json')
    back = read_speciesnet(tmp_path/'sn5.json', sample['images'], sample['names'], sample['tax'])
    assert back.format == 'speciesnet5' and len(back.image_preds) == len(sample['images'])
    # every box with a crop comes back with its crop's top class and score; the others unclassified
    bp = back.box_preds
    top = sample['crop_probs'].idxmax(axis=1)
    got = bp[bp.label.notna()]
    cids = [crop_id(i, j) for i, j in zip(got.image_id, got.det_idx)]
    assert sorted(cids) == sorted(top.index)
    assert got.label.astype(int).tolist() == top[cids].tolist()
    np.testing.assert_allclose(got.score, sample['crop_probs'].max(axis=1)[cids].round(4))
    assert len(bp) == len(sample['detections'])
    # photos without a crop carry the image-level answer on SpeciesNet's whole-image box, and read back to it
    with_crop = {i for i, _ in (c.rsplit('_', 1) for c in top.index)}
    whole = sample['ip'][~sample['ip'].image_id.isin(with_crop)].set_index('image_id')
    im = back.image_preds.set_index('image_id')
    assert len(whole) and im.label[whole.index].astype(int).tolist() == whole.label.tolist()
    np.testing.assert_allclose(im.score[whole.index], whole.score.round(4))
    assert im.failure[sample['failures'].image_id[0]] == 'RESIZE'
    assert im.seq_id.notna().all()

def test_speciesnet5_read_by_megadetectors_converter(sample):
    "MegaDetector's own SpeciesNet 5 -> MD converter takes our file, and its output passes MD's validator."
    sn = sn5_of(sample)
    md = wi.generate_md_results_from_predictions_json(copy.deepcopy(sn))
    assert validate_batch_results(md)['validation_results']['errors'] == []
    assert sum(len(o['detections'] or []) for o in md['images']) >= len(sample['detections'])

def test_speciesnet4_round_trip(sample, tmp_path):
    sn4 = speciesnet_predictions(sample['ip'], sample['images'], sample['detections'], sample['probs'],
                                 sample['names'], sample['failures'])
    write_json(sn4, tmp_path/'sn4.json')
    back = read_speciesnet(tmp_path/'sn4.json', sample['images'], sample['names'])
    assert back.format == 'speciesnet4'
    im = back.image_preds.set_index('image_id').loc[sample['ip'].image_id]
    assert im.label.astype(int).tolist() == sample['ip'].label.tolist()
    assert (im.source == 'simulated').all()

def test_md_batch_15_validates_and_round_trips(sample, tmp_path):
    md = md_batch_15(sample['images'], sample['detections'], sample['crop_probs'], sample['names'], sample['failures'],
                     tax=sample['tax'], info={'detector': 'simulated'})
    write_json(md, tmp_path/'md.json')
    r = validate_md_batch(tmp_path/'md.json')
    assert r['errors'] == [] and md['info']['format_version'] == '1.6'
    assert set(md['classification_category_descriptions']) == set(md['classification_categories'])
    back = read_md_classified(tmp_path/'md.json', sample['images'], sample['names'], sample['tax'])
    got = back.box_preds[back.box_preds.label.notna()]
    top = sample['crop_probs'].idxmax(axis=1)
    assert got.label.astype(int).tolist() == top[[crop_id(i, j) for i, j in zip(got.image_id, got.det_idx)]].tolist()
    assert back.image_preds.failure.notna().sum() == 1

def test_real_megadetector_file_as_16(speciesnet_dir, tmp_path):
    "MDv5a's real boxes on SpeciesNet's test photos, written as 1.6 and read back: same boxes."
    files = pd.read_csv(speciesnet_dir/'labels.csv').file
    ims = pd.DataFrame({'image_id': files, 'file_name': files})
    dets = load_megadetector(speciesnet_dir/'md_results_mdv5a.json', images=ims)
    md = md_batch_15(ims, dets, None, {0: 'empty'})
    write_json(md, tmp_path/'md.json')
    assert validate_md_batch(tmp_path/'md.json')['errors'] == []
    back = read_md_classified(tmp_path/'md.json', ims, {0: 'empty'})
    assert len(back.box_preds) == len(dets)
    np.testing.assert_allclose(back.box_preds.conf, dets.conf.round(4))
    blank = back.image_preds.set_index('file').loc[['blank.jpg', 'blank3.jpg'], 'label'].tolist()
    assert blank == [0, 0] # no box at or above DETECTOR_CONF: blank, our empty

def test_compare_on_the_sample(sample, tmp_path):
    write_json(sn5_of(sample), tmp_path/'sn5.json')
    theirs = read_speciesnet(tmp_path/'sn5.json', sample['images'], sample['names'], sample['tax'])
    ours = sample['labels'].merge(sample['images'][['image_id', 'seq_id']]).rename(columns={'category_id': 'label'})
    per_species = compare_answers(ours, theirs.box_preds, names=sample['names'])
    assert per_species.columns.tolist() == ['species', 'ours', 'theirs', 'both', 'agreement']
    assert per_species.agreement.between(0, 1).all()
    seqs = agreement_by_key(ours, theirs.box_preds, names=sample['names'])
    assert set(seqs.columns) == {'seq_id', 'ours', 'theirs', 'agree', 'overlap'} and len(seqs)
    m = answer_matrix(ours, theirs.image_preds, names=sample['names'])
    assert m.to_numpy().sum() == pytest.approx(theirs.image_preds.label.notna().sum())

def test_labels_are_seven_parts(sample):
    labs = class_labels(sample['names'], sample['tax'])
    assert all(l.count(';') == 6 for l in labs.values())
    assert labs[0].endswith(';blank')

# one malformed-input test per reader error: (change to a good SpeciesNet 5 file, message part)
SN_BAD = [
    (lambda d: d.pop('predictions'), 'predictions: required field is missing'),
    (lambda d: d['predictions'].__setitem__(0, 'x.jpg'), 'predictions[0]: expected an object'),
    (lambda d: d['info'].update(format_version=5), 'info.format_version: expected a version string'),
    (lambda d: d['predictions'][0].pop('filepath'), 'predictions[0].filepath: required field is missing'),
    (lambda d: d['predictions'][0].update(filepath=3), 'predictions[0].filepath: expected a string'),
    (lambda d: d['predictions'][1].update(filepath=d['predictions'][0]['filepath']), 'is listed twice'),
    (lambda d: d['predictions'][0].update(failures='DETECTOR'), 'predictions[0].failures: expected a list'),
    (lambda d: d['predictions'][0].update(detections={}), 'predictions[0].detections: expected a list'),
    (lambda d: d['predictions'][0]['detections'][0].update(category='7'), 'detections[0].category: expected "0"'),
    (lambda d: d['predictions'][0]['detections'][0].pop('conf'), 'detections[0].conf: required field is missing'),
    (lambda d: d['predictions'][0]['detections'][0].update(conf=-0.1), 'detections[0].conf: expected a confidence'),
    (lambda d: d['predictions'][0]['detections'][0].update(bbox='0 0 1 1'), 'detections[0].bbox: expected [x, y'),
    (lambda d: d['predictions'][0]['detections'][0].update(raw_classifications=[]),
     'detections[0].raw_classifications: expected an object'),
    (lambda d: d['predictions'][0]['detections'][0].update(raw_classifications={'classes': 'a', 'scores': [1]}),
     'raw_classifications.classes: expected a non-empty list'),
    (lambda d: d['predictions'][0]['detections'][0].update(raw_classifications={'classes': ['a'], 'scores': ['1']}),
     'raw_classifications.scores: expected 1 numbers'),
    (lambda d: d['predictions'][0]['detections'][0].update(processed_classification={'class': '', 'score': 1}),
     'processed_classification.class: expected a class string'),
    (lambda d: d['predictions'][0]['detections'][0].update(processed_classification={'class': 'a', 'score': True}),
     'processed_classification.score: expected a score'),
    (lambda d: d['predictions'][0]['detections'][0].update(processed_classification={'class': 'a', 'source': 1}),
     'processed_classification.source: expected a string'),
]

@pytest.fixture(scope='module')
def good_sn5():
    box = {'category': '1', 'label': 'animal', 'conf': 0.9, 'bbox': [0.1, 0.1, 0.2, 0.2],
           'raw_classifications': {'classes': ['a', 'b'], 'scores': [0.7, 0.2]},
           'processed_classification': {'class': 'a', 'score': 0.7, 'source': 'classifier'}}
    return {'info': {'format_version': SPECIESNET_FORMAT},
            'predictions': [{'filepath': 'x/1.jpg', 'detections': [box], 'model_version': 't'},
                            {'filepath': 'x/2.jpg', 'detections': [dict(WHOLE_IMAGE)], 'model_version': 't'}]}

def test_good_speciesnet5_reads(good_sn5, tmp_path):
    write_json(good_sn5, tmp_path/'p.json')
    r = read_speciesnet(tmp_path/'p.json')
    assert r.image_preds.name.tolist() == ['a', 'blank'] and r.image_preds.image_id.tolist() == ['x/1.jpg', 'x/2.jpg']
    assert len(r.box_preds) == 1 # the pseudo-box is not a box

@pytest.mark.parametrize('change,msg', SN_BAD, ids=[m for _, m in SN_BAD])
def test_malformed_speciesnet(good_sn5, tmp_path, change, msg):
    d = copy.deepcopy(good_sn5); change(d)
    write_json(d, tmp_path/'p.json')
    with pytest.raises(InputError, match=None) as e: read_speciesnet(tmp_path/'p.json')
    assert str(tmp_path/'p.json') in str(e.value) and msg in str(e.value), str(e.value)

def test_malformed_speciesnet_top_level(tmp_path):
    (tmp_path/'p.json').write_text('[]')
    with pytest.raises(InputError, match='expected a JSON object with a "predictions" list'):
        read_speciesnet(tmp_path/'p.json')
    (tmp_path/'p.json').write_text('{"predictions": [')
    with pytest.raises(InputError, match='malformed JSON'): read_speciesnet(tmp_path/'p.json')
    with pytest.raises(InputError, match='file not found'): read_speciesnet(tmp_path/'none.json')

MD_BAD = [
    (lambda d: d.update(classification_category_descriptions=['x']),
     'classification_category_descriptions: expected an object'),
    (lambda d: d['classification_category_descriptions'].update({'99': 'x;;;;;;y'}),
     'classification_category_descriptions.99: not a key of classification_categories'),
    (lambda d: d['images'][0]['detections'][0].update(classifications=[['0', 7]]),
     'images[0].detections[0].classifications: expected a list of [class_id, conf]'),
    (lambda d: d['images'][0]['detections'][0].update(category='9'), 'images[0].detections[0].category: unknown'),
    (lambda d: d.pop('images'), 'images: required field is missing'),
]

@pytest.fixture(scope='module')
def good_md():
    images = pd.DataFrame({'image_id': ['a', 'b'], 'file_name': ['a.jpg', 'b.jpg']})
    dets = pd.DataFrame({'image_id': ['a'], 'det_idx': [0], 'category': ['animal'], 'conf': [0.9],
                         'x': [0.1], 'y': [0.1], 'w': [0.2], 'h': [0.2]})
    cp = pd.DataFrame([[0.2, 0.8]], columns=[0, 3], index=['a_000'])
    tax = pd.DataFrame({'category_id': [3], 'name': ['agouti'], 'class': ['mammalia'], 'order': ['rodentia'],
                        'family': ['dasyproctidae'], 'genus': ['dasyprocta'], 'species': ['punctata'], 'common_name': ['agouti']})
    return md_batch_15(images, dets, cp, {0: 'empty', 3: 'agouti'}, tax=tax) # a taxonomy: descriptions are written

@pytest.mark.parametrize('change,msg', MD_BAD, ids=[m for _, m in MD_BAD])
def test_malformed_md_classified(good_md, tmp_path, change, msg):
    d = copy.deepcopy(good_md); change(d)
    write_json(d, tmp_path/'md.json')
    with pytest.raises(InputError) as e: read_md_classified(tmp_path/'md.json')
    assert str(tmp_path/'md.json') in str(e.value) and msg in str(e.value), str(e.value)

@pytest.mark.parametrize('change,msg', [
    (lambda d: d['info'].update(format_version='1.4'), "info.format_version: '1.4': 1.5 or later expected"),
    (lambda d: d['info']['detector_metadata'].update(conservative_detection_threshold=2),
     'info.detector_metadata.conservative_detection_threshold: expected a confidence in [0, 1]'),
    (lambda d: d['classification_category_descriptions'].update({'3': 'agouti'}),
     'classification_category_descriptions.3: expected uuid;class;'),
    (lambda d: d['images'][0]['detections'][0].update(conf=1), 'MegaDetector validator: Image a.jpg has an illegal'),
])
def test_validate_md_batch_refuses(good_md, change, msg):
    d = copy.deepcopy(good_md); change(d)
    with pytest.raises(InputError, match=None) as e: validate_md_batch(d, 'md.json')
    assert msg in str(e.value), str(e.value)
