"""The Camtrap DP package: written from the embedded sample it validates (frictionless against the standard's own 1.0
profile and table schemas, vendored in iwildcam_nb/data/camtrap-dp); one observation per sequence and species with its own count;
blank and unanswered sequences; missing coordinates and other bad input refused with one message naming it."""
import json, logging
import pandas as pd
import pytest
from iwildcam_nb.camtrapdp import (CAMTRAP_DP_URL, DATAPACKAGE, TABLES, CamtrapConfig, camtrap_photos, scientific_names,
                                   table_columns, validate_camtrapdp, write_camtrapdp)
from iwildcam_nb.core import InputError
from iwildcam_nb.outputs import NO_ANSWER
from iwildcam_nb.sample import SAMPLE_FILES, make_sample, read_sample
from iwildcam_nb.taxonomy import load_gps_locations, read_taxonomy

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    "The embedded sample's tables (small frames), its true counts as seq_preds, its camera places and taxonomy."
    root = make_sample(tmp_path_factory.mktemp('sample'), seed=0, width=64, height=48)
    s = read_sample(root)
    sp = s['counts'][['seq_id', 'category_id', 'count']].assign(score=0.9, source='truth').reset_index(drop=True)
    return dict(images=s['images'], categories=s['categories'], seq_preds=sp, taxonomy=read_taxonomy(root/SAMPLE_FILES['taxonomy']),
                locations=pd.read_csv(root/SAMPLE_FILES['places']), gps=load_gps_locations(root/SAMPLE_FILES['gps']))

def write(s, out, **kw):
    "Write a package from the sample's tables, any of them replaced by `kw`."
    a = {k: kw.pop(k, s[k]) for k in ('images', 'seq_preds', 'categories', 'locations', 'taxonomy')}
    return write_camtrapdp(out, a['images'], a['seq_preds'], a['categories'], a['locations'], a['taxonomy'], **kw)

def read(paths, name): return pd.read_csv(paths[name], dtype=str, keep_default_na=False)

def test_sample_package_validates(sample, tmp_path):
    "Every file is there with the standard's columns, one row per camera, photo and answer, and the package validates."
    paths = write(sample, tmp_path, cfg=CamtrapConfig(contributors=({'title': 'A. Ranger', 'role': 'contact'},),
                                                      licenses=({'name': 'CC0-1.0', 'scope': 'data'}, {'name': 'CC-BY-4.0', 'scope': 'media'})))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['datapackage.json', 'deployments.csv', 'media.csv', 'observations.csv']
    assert validate_camtrapdp(tmp_path) == []
    for n in TABLES: assert list(read(paths, n).columns) == table_columns(n)
    ims = sample['images']
    assert len(read(paths, 'deployments')) == ims.location.nunique()
    media = read(paths, 'media')
    assert sorted(media.mediaID) == sorted(ims.image_id) and set(media.captureMethod) == {'activityDetection'}
    obs = read(paths, 'observations')
    assert len(obs) == len(sample['seq_preds']) and set(obs.eventID) == set(sample['seq_preds'].seq_id)
    assert set(obs.observationLevel) == {'event'} and set(obs.classificationMethod) == {'machine'}
    desc = json.loads(paths['datapackage'].read_text())
    assert desc['profile'] == f'{CAMTRAP_DP_URL}/camtrap-dp-profile.json' and CAMTRAP_DP_URL.endswith('/1.0')
    used = set(obs.scientificName) - {''}
    assert used and {t['scientificName'] for t in desc['taxonomic']} == used
    assert all(t['taxonRank'] == 'species' and t['vernacularNames']['eng'] for t in desc['taxonomic'])

def test_event_times_and_deployment_span(sample, tmp_path):
    "An event runs from its sequence's first photo to its last; a deployment from its camera's first photo to its last."
    paths = write(sample, tmp_path)
    ims = sample['images'].assign(t=lambda d: d.datetime.dt.floor('s').dt.strftime('%Y-%m-%dT%H:%M:%SZ'))
    ev = read(paths, 'observations').drop_duplicates('eventID').set_index('eventID')
    want = ims.groupby('seq_id').t.agg(['min', 'max'])
    assert (ev.eventStart == want['min'].reindex(ev.index)).all() and (ev.eventEnd == want['max'].reindex(ev.index)).all()
    dep = read(paths, 'deployments').set_index('deploymentID')
    span = ims.groupby('location').t.agg(['min', 'max'])
    assert (dep.deploymentStart == span['min'].reindex(dep.index)).all() and (dep.deploymentEnd == span['max'].reindex(dep.index)).all()

def test_two_species_in_a_sequence(sample, tmp_path):
    "Two species in one sequence: two observations of the same event, each with its own count and name."
    seq = sample['images'].seq_id.iloc[0]
    sp = pd.DataFrame({'seq_id': [seq, seq], 'category_id': [3, 10], 'count': [2, 5], 'score': [0.8, 0.8], 'source': 'vote'})
    paths = write(sample, tmp_path, seq_preds=sp)
    assert validate_camtrapdp(tmp_path) == []
    obs = read(paths, 'observations')
    assert obs[['eventID', 'observationType', 'scientificName', 'count']].values.tolist() == [
        [seq, 'animal', 'Dasyprocta punctata', '2'], [seq, 'animal', 'Leopardus pardalis', '5']]
    assert obs.observationID.nunique() == 2 and obs.eventStart.nunique() == 1

def test_blank_and_unanswered_sequences(sample, tmp_path):
    "An empty sequence is a blank observation without count or name; one with no answerable photo is unclassified."
    s1, s2 = sample['images'].seq_id.unique()[:2]
    sp = pd.DataFrame({'seq_id': [s1, s2], 'category_id': [0, 0], 'count': [0, 0], 'score': [0.95, float('nan')], 'source': ['vote', NO_ANSWER]})
    paths = write(sample, tmp_path, seq_preds=sp)
    assert validate_camtrapdp(tmp_path) == []
    obs = read(paths, 'observations').set_index('eventID')
    assert obs.loc[s1, ['observationType', 'scientificName', 'count', 'classificationProbability']].tolist() == ['blank', '', '', '0.95']
    assert obs.loc[s2, ['observationType', 'count', 'classificationMethod', 'classifiedBy']].tolist() == ['unclassified', '', '', '']
    assert json.loads(paths['datapackage'].read_text())['taxonomic'] == []

def test_missing_coordinates_one_clear_error(sample, tmp_path):
    "The sample's GPS file withholds three cameras: one InputError names the first and counts the others; nothing is written."
    with pytest.raises(InputError) as e: write(sample, tmp_path/'out', locations=sample['gps'])
    missing = sorted(set(sample['images'].location) - set(sample['gps'].location))
    assert len(missing) == 3
    assert str(e.value) == (f"locations: location '{missing[0]}': no latitude/longitude (and 2 more cameras): "
                            'Camtrap DP 1.0 requires coordinates for every deployment')
    assert not (tmp_path/'out').exists()
    one = sample['locations'].assign(latitude=lambda d: d.latitude.where(d.location != int(missing[1])))
    with pytest.raises(InputError, match=f"location '{missing[1]}': no latitude/longitude: Camtrap"): write(sample, tmp_path/'out', locations=one)

def bad_inputs(s):
    "(what is changed, expected message part) for inputs each refused with an InputError that names them."
    sp, ims, locs = s['seq_preds'], s['images'], s['locations']
    yield dict(images=ims.drop(columns='seq_id')), 'images: seq_id: required column is missing'
    yield dict(images=pd.concat([ims, ims.iloc[:1]])), f"image {ims.image_id.iloc[0]!r} is listed twice"
    yield dict(images=ims.assign(file_name='../photos/' + ims.file_name)), 'must be a URL or a path inside the package'
    yield dict(images=ims.assign(file_name=ims.file_name.str.replace('.jpg', '.xyz'))), 'is not a known image, video or sound file type'
    other = ims.location[ims.location != ims.location[0]].iloc[0] # photo 0's sequence has more photos: one moved to another camera
    yield dict(images=ims.assign(location=ims.location.where(ims.index > 0, other))), f'sequence {ims.seq_id[0]!r}: spans two camera locations'
    yield dict(seq_preds=pd.concat([sp, sp.iloc[:1]])), f"category {sp.category_id.iloc[0]} of sequence {sp.seq_id.iloc[0]!r} is listed twice"
    yield dict(seq_preds=sp.assign(category_id=sp.category_id.where(sp.index > 0, 999))), 'row 0: category 999 of sequence'
    yield dict(seq_preds=sp.assign(score=1.5)), 'has a score that is no probability'
    yield dict(seq_preds=sp.drop(columns='count')), 'seq_preds: count: required column is missing'
    yield dict(categories=s['categories'].drop(columns='name')), 'categories: name: required column is missing'
    yield dict(locations=locs.drop(columns='longitude')), 'locations: longitude: required column is missing'
    yield dict(locations=pd.concat([locs, locs.iloc[:1]])), 'is listed twice'
    yield dict(locations=locs.assign(longitude=locs.longitude.where(locs.index > 0, 200.0))), 'are off the globe'
    yield dict(locations=locs.assign(timezone='Nowhere/Town')), "locations: timezone: 'Nowhere/Town' is not a time zone"

def test_bad_input_is_named(sample, tmp_path):
    "Each bad input stops the write with an InputError naming the table and what is wrong, before any file is written."
    for i, (kw, msg) in enumerate(bad_inputs(sample)):
        with pytest.raises(InputError) as e: write(sample, tmp_path/str(i), **kw)
        assert msg in str(e.value), (i, str(e.value))
        assert not (tmp_path/str(i)).exists()
    for kw in (dict(timezone='+25:00'), dict(sampling_design='random'), dict(licenses=({'name': 'CC0-1.0', 'scope': 'data'},))):
        with pytest.raises(InputError, match='CamtrapConfig'): CamtrapConfig(**kw)

def test_bad_rewrite_keeps_the_old_package(sample, tmp_path):
    "A rewrite whose input is bad leaves the package already in the folder whole and valid."
    write(sample, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputError): write(sample, tmp_path, locations=sample['gps'])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before and validate_camtrapdp(tmp_path) == []

def test_time_zones(sample):
    "Offsets come from the camera's zone (summer time included), a locations `timezone` column overriding the default."
    ims = pd.DataFrame({'image_id': ['a', 'b', 'c'], 'file_name': ['a.jpg', 'b.jpg', 'c.jpg'], 'location': ['1', '1', '2'], 'seq_id': ['s', 't', 'u'],
                        'datetime': pd.to_datetime(['2021-01-10 08:00:00', '2021-07-10 08:00:00.900', '2021-07-10 08:00:00'], format='ISO8601')})
    locs = pd.DataFrame({'location': [1, 2], 'timezone': [None, '+03:00']})
    p = camtrap_photos(ims, locs, CamtrapConfig(timezone='Europe/Brussels'))
    assert p.timestamp.tolist() == ['2021-01-10T08:00:00+01:00', '2021-07-10T08:00:00+02:00', '2021-07-10T08:00:00+03:00']
    assert camtrap_photos(ims).timestamp.tolist() == ['2021-01-10T08:00:00Z', '2021-07-10T08:00:00Z', '2021-07-10T08:00:00Z']

def test_undated_photos_left_out_with_a_warning(sample, tmp_path, caplog):
    "A photo without a datetime can't be in the package: it is left out with a warning, and the package still validates."
    ims = sample['images'].copy()
    ims.loc[0, 'datetime'] = pd.NaT
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): paths = write(sample, tmp_path, images=ims)
    assert '1 photos without datetime' in caplog.text and ims.image_id[0] not in set(read(paths, 'media').mediaID)
    assert validate_camtrapdp(tmp_path) == []

def test_names_without_taxonomy(sample, tmp_path):
    "Without a taxonomy table the category names are the scientific names, and the taxonomic list holds them alone."
    names = scientific_names(sample['categories'])
    assert names.loc[10, 'scientificName'] == 'Leopardus pardalis' and names.loc[10, 'taxonRank'] == ''
    paths = write(sample, tmp_path, taxonomy=None)
    assert validate_camtrapdp(tmp_path) == []
    assert all(set(t) == {'scientificName'} for t in json.loads(paths['datapackage'].read_text())['taxonomic'])

def test_validator_names_the_problems(sample, tmp_path):
    "Broken tables and metadata are each reported by frictionless with the 1.0 profile: a bad timestamp, a broken foreign key, a wrong enum, a missing field."
    paths = write(sample, tmp_path)
    m = read(paths, 'media')
    m.loc[0, 'timestamp'] = '2019-07-14 22:32:19'
    m.to_csv(paths['media'], index=False)
    o = read(paths, 'observations')
    o.loc[0, 'deploymentID'], o.loc[1, 'observationType'] = 'nowhere', 'ghost'
    o.to_csv(paths['observations'], index=False)
    d = json.loads(paths['datapackage'].read_text())
    d['project'].pop('samplingDesign')
    (tmp_path/DATAPACKAGE).write_text(json.dumps(d))
    probs = '\n'.join(validate_camtrapdp(tmp_path))
    for part in ("'samplingDesign' is a required property", 'media: Type error in the cell "2019-07-14 22:32:19"',
                 'observations: Row at position "2" violates the foreign key', 'observations: The cell "ghost"'):
        assert part in probs, (part, probs)

def test_validator_insists_on_the_standard(sample, tmp_path):
    "A package naming another schema or no Camtrap DP profile is refused; a URL that is not vendored is not fetched."
    paths = write(sample, tmp_path)
    d = json.loads(paths['datapackage'].read_text())
    d['resources'][2]['schema'] = 'https://example.org/observations.json'
    (tmp_path/DATAPACKAGE).write_text(json.dumps(d))
    probs = '\n'.join(validate_camtrapdp(tmp_path))
    assert "no 'observations' resource with the 1.0 schema" in probs and 'https://example.org/observations.json is not vendored' in probs
    d = json.loads(paths['datapackage'].read_text()) | {'profile': 'data-package'}
    d['resources'][2]['schema'] = f'{CAMTRAP_DP_URL}/observations-table-schema.json'
    (tmp_path/DATAPACKAGE).write_text(json.dumps(d))
    assert validate_camtrapdp(tmp_path) == [f'{DATAPACKAGE}: profile: not {CAMTRAP_DP_URL}/camtrap-dp-profile.json']
