"""The formats of today, written by one call (`exports.write_field_formats`) from the embedded sample's answers, each
accepted by its field's own validator: MegaDetector 1.6 by megadetector-utils, the Camtrap DP 1.0 package by
frictionless with the standard's own profile and schemas (vendored in iwildcam_nb/data/camtrap-dp), SpeciesNet 5.x by
SpeciesNet 5.0.6's own loader (vendored in tests/data/speciesnet-5.0.6) and MegaDetector's SpeciesNet 5 converter.
Each validator is also shown refusing a broken file, so a green run means something."""
import copy, importlib, json, logging, shutil, sys, types
from unittest.mock import patch
import pandas as pd
import pytest
from conftest import ROOT, simulated_answers
from iwildcam_nb.camtrapdp import DATAPACKAGE, validate_camtrapdp
from iwildcam_nb.core import InputError, read_json
from iwildcam_nb.exports import EXPORT_FILES, write_field_formats
from iwildcam_nb.formats import WHOLE_IMAGE, read_speciesnet, validate_md_batch
from iwildcam_nb.sample import SAMPLE_FILES
from iwildcam_nb.taxonomy import load_gps_locations, read_taxonomy

pytest.importorskip('frictionless')
from PIL import ImageFile
_loose = ImageFile.LOAD_TRUNCATED_IMAGES # MegaDetector's import sets it for the whole process: put back below
validate_batch_results = pytest.importorskip('megadetector.postprocessing.validate_batch_results').validate_batch_results
wi = pytest.importorskip('megadetector.utils.wi_taxonomy_utils')
ImageFile.LOAD_TRUNCATED_IMAGES = _loose

SN_DIR = ROOT/'tests'/'data'/'speciesnet-5.0.6'

def speciesnet_utils():
    "SpeciesNet 5.0.6's own `speciesnet.utils` (vendored), with stand-ins for the modules it imports but its loader never calls."
    stubs = {m: types.ModuleType(m) for m in ('absl', 'absl.logging', 'kagglehub')}
    stubs['absl'].logging, stubs['absl.logging'].info = stubs['absl.logging'], lambda *a, **k: None
    for m, name in (('cloudpathlib', 'CloudPath'), ('huggingface_hub', 'snapshot_download')):
        try: importlib.import_module(m)
        except ImportError: stubs[m] = types.SimpleNamespace(**{name: None})
    pkg = types.ModuleType('speciesnet'); pkg.__path__ = [str(SN_DIR/'speciesnet')]
    loose = ImageFile.LOAD_TRUNCATED_IMAGES # its import sets Pillow's flag for the process
    try:
        with patch.dict(sys.modules, {**stubs, 'speciesnet': pkg}): return importlib.import_module('speciesnet.utils')
    finally: ImageFile.LOAD_TRUNCATED_IMAGES = loose

@pytest.fixture(scope='module')
def answers(tmp_path_factory):
    "The embedded sample (one sequence per camera) with simulated box and photo answers, its true counts as sequence answers, a failed photo, taxonomy and places."
    s = simulated_answers(tmp_path_factory.mktemp('sample'))
    probs, crop_probs, ip = s['probs'], s['crop_probs'], s['ip']
    failed = s['images'].image_id.iloc[3]
    sp = s['counts'][['seq_id', 'category_id', 'count']].assign(score=0.9, source='truth').reset_index(drop=True)
    return dict(images=s['images'], dets=s['detections'], image_preds=ip[ip.image_id != failed], seq_preds=sp, probs=probs,
                crop_probs=crop_probs, categories=s['categories'], failed=failed,
                failures=pd.DataFrame({'image_id': [failed], 'stage': ['read'], 'reason': ['not a JPEG']}),
                taxonomy=read_taxonomy(s['root']/SAMPLE_FILES['taxonomy']), places=pd.read_csv(s['root']/SAMPLE_FILES['places']),
                gps=load_gps_locations(s['root']/SAMPLE_FILES['gps']))

def write(a, out, **kw):
    "`write_field_formats` on the answers `a`, any argument replaced by `kw`."
    kw = dict(taxonomy=a['taxonomy'], places=a['places'], info={'detector': 'simulated'}) | kw
    return write_field_formats(out, a['images'], a['dets'], a['image_preds'], a['seq_preds'], a['probs'], a['crop_probs'],
                               a['categories'], a['failures'], **kw)

@pytest.fixture(scope='module')
def written(answers, tmp_path_factory):
    out = tmp_path_factory.mktemp('out')
    return out, write(answers, out)

def test_files_and_names(written):
    "The names readers of earlier runs look for; the Camtrap DP package in its own folder."
    out, paths = written
    assert {k: p.relative_to(out).as_posix() for k, p in paths.items()} == {
        'megadetector': 'megadetector_classified.json', 'speciesnet': 'speciesnet_predictions.json',
        'sequences': 'sequences.csv', 'camtrapdp': f'camtrapdp/{DATAPACKAGE}'}
    assert EXPORT_FILES['camtrapdp'] == 'camtrapdp' and all(p.exists() for p in paths.values())
    assert sorted(p.name for p in (out/'camtrapdp').iterdir()) == ['datapackage.json', 'deployments.csv', 'media.csv', 'observations.csv']

def test_megadetector_file_passes_megadetector_utils(answers, written):
    "megadetector-utils' validator accepts the 1.6 file (thresholds, taxonomy strings, the failure), and refuses it broken."
    md = read_json(written[1]['megadetector'])
    assert validate_batch_results(copy.deepcopy(md))['validation_results']['errors'] == []
    assert validate_md_batch(written[1]['megadetector'])['errors'] == []
    assert md['info']['format_version'] == '1.6' and md['info']['detector'] == 'simulated'
    assert set(md['info']['detector_metadata']) >= {'typical_detection_threshold', 'conservative_detection_threshold'}
    assert set(md['classification_category_descriptions']) == set(md['classification_categories'])
    failed = answers['images'].set_index('image_id').file_name[answers['failed']]
    assert [im for im in md['images'] if 'failure' in im] == [{'file': failed, 'failure': 'read: not a JPEG', 'detections': None}]
    broken = copy.deepcopy(md)
    next(im for im in broken['images'] if im.get('detections'))['detections'][0].pop('conf')
    assert validate_batch_results(broken)['validation_results']['errors'] # a box without its confidence
    broken = copy.deepcopy(md); broken['info']['detector_metadata'].pop('typical_detection_threshold')
    with pytest.raises(InputError, match='typical_detection_threshold'): validate_md_batch(broken)

def test_camtrap_package_passes_frictionless(answers, written):
    "frictionless with the Camtrap DP 1.0 profile accepts the package: a deployment per camera, media per photo, observations per sequence and species."
    out = written[0]/'camtrapdp'
    assert validate_camtrapdp(out) == []
    read = lambda n: pd.read_csv(out/f'{n}.csv', dtype=str, keep_default_na=False)
    ims, sp = answers['images'], answers['seq_preds']
    assert len(read('deployments')) == ims.location.nunique() and sorted(read('media').mediaID) == sorted(ims.image_id)
    obs = read('observations')
    assert len(obs) == len(sp) and set(obs.eventID) == set(sp.seq_id)
    animals = obs[obs.observationType == 'animal']
    assert len(animals) and (animals['count'].astype(int) >= 1).all()
    taxa = json.loads((out/DATAPACKAGE).read_text())['taxonomic']
    assert {t['scientificName'] for t in taxa} == set(animals.scientificName) and all(t.get('taxonRank') == 'species' for t in taxa)

def test_camtrap_validator_refuses_a_broken_package(written, tmp_path):
    "A package missing a required field, or with a required cell empty, is refused by the same validation."
    bad = tmp_path/'bad'; shutil.copytree(written[0]/'camtrapdp', bad)
    d = json.loads((bad/DATAPACKAGE).read_text()); d.pop('project')
    (bad/DATAPACKAGE).write_text(json.dumps(d))
    media = pd.read_csv(bad/'media.csv', dtype=str, keep_default_na=False)
    media.loc[0, 'timestamp'] = ''
    media.to_csv(bad/'media.csv', index=False)
    probs = '\n'.join(validate_camtrapdp(bad))
    assert "'project' is a required property" in probs and 'media: ' in probs and 'timestamp' in probs, probs

def test_speciesnet5_file_loads_in_speciesnet(answers, written):
    "SpeciesNet 5.0.6's own loader takes the file as its own (a 4.x file it refuses); MegaDetector's converter takes it too."
    utils, path = speciesnet_utils(), written[1]['speciesnet']
    sn = read_json(path)
    assert sn['info'] == {'format_version': utils.FORMAT_VERSION} and WHOLE_IMAGE == utils.whole_image_detection()
    files = answers['images'].set_index('image_id').file_name
    done, todo = utils.load_partial_predictions(path, [{'filepath': f} for f in files])
    assert todo == [{'filepath': files[answers['failed']]}] # a failed photo is redone; every other one is kept
    assert len(done) == len(files) - 1 and not any(k in p for p in done.values() for k in ('prediction', 'classifications'))
    boxes = [b for p in sn['predictions'] for b in p.get('detections', []) if b['category'] != '0']
    assert sum('processed_classification' in b for b in boxes) == len(answers['crop_probs']) # every box with a crop answered
    assert all(p.get('country') for p in done.values()) # every sample camera has a country in its places
    md = wi.generate_md_results_from_predictions_json(copy.deepcopy(sn))
    assert validate_batch_results(md)['validation_results']['errors'] == []
    with pytest.raises(RuntimeError, match='Filepath from loaded predictions is missing'):
        utils.load_partial_predictions(path, [{'filepath': f} for f in files.iloc[1:]])

def test_speciesnet4_option_for_older_readers(answers, tmp_path):
    "`speciesnet='4'` writes one answer per photo, read back as 4.x; SpeciesNet 5 refuses it as an older format."
    paths = write(answers, tmp_path, speciesnet='4')
    assert read_speciesnet(paths['speciesnet'], answers['images']).format == 'speciesnet4'
    files = answers['images'].file_name
    with pytest.raises(RuntimeError, match='older output format'):
        speciesnet_utils().load_partial_predictions(paths['speciesnet'], [{'filepath': f} for f in files])
    with pytest.raises(InputError, match="speciesnet: '6': one of 5, 4"): write(answers, tmp_path/'six', speciesnet='6')
    assert not (tmp_path/'six').exists()

def test_without_places_no_package_and_the_old_one_goes(answers, written, tmp_path, caplog):
    "Without camera places the other files are written, the package is not (one warning), and an older one stops being a package."
    out = tmp_path/'out'; shutil.copytree(written[0], out)
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): paths = write(answers, out, places=None)
    assert 'camtrapdp' not in paths and 'Camtrap DP package not written' in caplog.text
    assert not (out/'camtrapdp'/DATAPACKAGE).exists() and paths['speciesnet'].exists()

def test_withheld_coordinates_leave_their_cameras_out(answers, tmp_path, caplog):
    "With iWildCam's GPS file (three cameras withheld) the package holds the other cameras, says so once, and validates."
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): paths = write(answers, tmp_path, places=answers['gps'])
    ims, gps = answers['images'], answers['gps']
    kept = ims.location.astype(str).isin(gps.location.astype(str))
    assert 0 < kept.sum() < len(ims) and f'{(~kept).sum()} photos of 3 cameras without coordinates left out' in caplog.text
    assert validate_camtrapdp(paths['camtrapdp'].parent) == []
    media = pd.read_csv(tmp_path/'camtrapdp'/'media.csv', dtype=str)
    assert sorted(media.mediaID) == sorted(ims.image_id[kept])
