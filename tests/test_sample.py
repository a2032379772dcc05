"""The embedded data-set generator: determinism, layout, iWildCam 2021 fields, disjoint locations, consistent truth;
the supplements beside the camera data (GPS file with one country withheld, taxonomy file, iNat-like close-ups), which
leave the camera files byte for byte as they were; and its drawing module, `iwildcam_nb.scenes`, which must stand on its own."""
import json, re, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from iwildcam_nb.core import InputError
from iwildcam_nb.landsat import RS_DIR
from iwildcam_nb.sample import (INAT_DIR, MASKS_DIR, SAMPLE_FILES, make_sample, read_sample, sample_is_current,
                                species_table, summarize_sample)
from iwildcam_nb.supplements import SITES, SupplementConfig, place_cameras
from iwildcam_nb.simulate import SampleConfig, make_locations

TINY = dict(n_train_locations=2, n_test_locations=1, seqs_per_location=4, max_frames=3, width=64, height=48)
IMAGE_FIELDS = {'id': str, 'width': int, 'height': int, 'file_name': str, 'rights_holder': str, 'location': int,
                'sub_location': int, 'datetime': str, 'seq_id': str, 'seq_num_frames': int, 'frame_num': int}

def files(d):
    "Relative path -> bytes of every file under `d`."
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(Path(d).rglob('*')) if p.is_file()}

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp('tiny')/'s', seed=3, **TINY)

def load(d, key): return json.loads((d/SAMPLE_FILES[key]).read_text())

def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a,b,c = (files(make_sample(tmp_path/n, seed=s, **TINY)) for n,s in [('a', 7), ('b', 7), ('c', 8)])
    assert a == b
    assert a.keys() != c.keys() # image ids depend on the seed
    assert a[SAMPLE_FILES['boxes']] != c[SAMPLE_FILES['boxes']]

def test_layout(tiny):
    got = files(tiny)
    assert set(SAMPLE_FILES.values()) <= set(got)
    assert set(k.split('/')[0] for k in got) == {'train', 'test', 'metadata', INAT_DIR, MASKS_DIR, RS_DIR}
    for split,key in [('train', 'train'), ('test', 'test')]:
        ims = load(tiny, key)['images']
        assert {f'{split}/{i["file_name"]}' for i in ims} == {k for k in got if k.startswith(split+'/')}
        for i in ims[:3]:
            assert i['file_name'] == i['id'] + '.jpg'
            with Image.open(tiny/split/i['file_name']) as im: assert im.size == (i['width'], i['height']) == (64, 48)
    assert load(tiny, 'info')['seed'] == 3

def test_iwildcam_2021_fields(tiny):
    tr,te = load(tiny, 'train'), load(tiny, 'test')
    assert set(tr) == {'images', 'annotations', 'categories'} and set(te) == {'images', 'categories'}
    for i in tr['images'] + te['images']:
        assert {k: type(v) for k,v in i.items()} == IMAGE_FIELDS
        assert re.fullmatch(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}', i['datetime'])
        assert 0 <= i['frame_num'] < i['seq_num_frames'] <= 3
    cats = tr['categories']
    assert cats[0] == {'id': 0, 'name': 'empty', 'count': cats[0]['count']}
    ids = [c['id'] for c in cats]
    assert ids != list(range(len(ids))) # non-contiguous, like the real set
    assert sorted(a['image_id'] for a in tr['annotations']) == sorted(i['id'] for i in tr['images'])
    assert {a['category_id'] for a in tr['annotations']} <= set(ids)
    assert sum(c['count'] for c in cats) == len(tr['annotations'])
    labels = load(tiny, 'test_labels')
    assert sorted(a['image_id'] for a in labels['annotations']) == sorted(i['id'] for i in te['images'])

def test_megadetector_format(tiny):
    md = load(tiny, 'megadetector')
    assert md['detection_categories'] == {'1': 'animal', '2': 'person'} and 'info' in md
    n_images = len(load(tiny, 'train')['images']) + len(load(tiny, 'test')['images'])
    assert len(md['images']) == n_images
    for r in md['images']:
        confs = [d['conf'] for d in r['detections']]
        assert confs == sorted(confs, reverse=True) and r['max_detection_conf'] == (confs[0] if confs else 0)
        for d in r['detections']:
            x,y,w,h = d['bbox']
            assert d['category'] in ('1', '2') and 0 < d['conf'] <= 1
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 1.0001 and y + h <= 1.0001

@pytest.mark.parametrize('seed', [0, 1, 2])
def test_train_test_locations_disjoint(tmp_path, seed):
    out = make_sample(tmp_path/'s', seed=seed, **{**TINY, 'n_train_locations': 3, 'n_test_locations': 2})
    tr = {i['location'] for i in load(out, 'train')['images']}
    te = {i['location'] for i in load(out, 'test')['images']}
    assert len(tr) == 3 and len(te) == 2 and not tr & te

def test_counts_agree_with_boxes(tiny):
    d = read_sample(tiny)
    cnt,bx = d['counts'],d['boxes']
    assert set(cnt.seq_id) == set(d['images'].seq_id) # every sequence has a row
    animal = cnt[cnt.category_id > 0].set_index(['seq_id', 'category_id'])['count'].sort_index()
    from_boxes = bx.groupby(['seq_id', 'category_id']).individual_id.nunique().sort_index()
    assert animal.to_dict() == from_boxes.to_dict()
    assert (cnt[cnt.category_id == 0]['count'] == 0).all()
    assert ((bx[['x', 'y', 'w', 'h', 'visible_fraction']] >= 0).all().all() and (bx.x + bx.w <= 1.0001).all()
            and (bx.y + bx.h <= 1.0001).all() and (bx.visible_fraction <= 1).all())

def test_read_sample_goes_through_the_data_layer(tiny, tmp_path):
    from iwildcam_nb.data import IMAGE_COLS
    from iwildcam_nb.megadetector import DET_COLS
    d = read_sample(tiny)
    assert d['images'].columns.tolist() == IMAGE_COLS + ['split'] and d['detections'].columns.tolist() == DET_COLS
    assert str(d['images'].datetime.dtype).startswith('datetime64') and d['images'].datetime.notna().all()
    assert sorted(d['labels'].image_id) == sorted(d['images'].image_id) # hidden test labels included
    md = load(tiny, 'megadetector')
    assert len(d['detections']) == sum(len(r['detections']) for r in md['images']) and d['detections'].file.notna().all()
    bad = tmp_path/'bad'; shutil.copytree(tiny, bad) # a broken file is refused by the loaders, naming file and field
    tr = load(bad, 'train'); tr['annotations'][1]['category_id'] = 999
    (bad/SAMPLE_FILES['train']).write_text(json.dumps(tr))
    with pytest.raises(InputError, match=r'iwildcam2021_train_annotations.json: annotations\[1\].category_id: unknown category 999'):
        read_sample(bad)

def test_night_frames_are_grayscale(tmp_path):
    out = make_sample(tmp_path/'n', seed=0, **{**TINY, 'night_frac': 1.})
    for i in load(out, 'train')['images'][:5]:
        a = np.asarray(Image.open(out/'train'/i['file_name']), np.int16)
        assert np.abs(a - a.mean(2, keepdims=True)).max() <= 2
        assert int(i['datetime'][11:13]) < 6 or int(i['datetime'][11:13]) >= 19

def test_tiny_config_is_small_and_summarized(tiny):
    s = summarize_sample(tiny)
    assert s.index.tolist() == ['train', 'test']
    assert 5 <= s.images.sum() <= 40 # 12 sequences of 1-3 frames
    assert s.locations.tolist() == [2, 1] and s.sequences.tolist() == [8, 4]
    assert {'species', 'empty_images', 'night_images', 'individuals', 'detections'} <= set(s.columns)

def test_two_species_sequence_exists(tmp_path):
    out = make_sample(tmp_path/'t', seed=0, **{**TINY, 'two_species_frac': 1., 'empty_frac': 0.})
    cnt = pd.read_csv(out/SAMPLE_FILES['counts'])
    assert (cnt[cnt.category_id > 0].groupby('seq_id').size() == 2).any()

def test_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path/'mine.txt').write_text('keep me')
    with pytest.raises(InputError, match='folder holds other files'): make_sample(tmp_path, **TINY)
    assert (tmp_path/'mine.txt').read_text() == 'keep me'

def test_bad_config_is_refused():
    with pytest.raises(ValueError, match='unknown species'): SampleConfig(species=('agouti', 'dragon'))
    with pytest.raises(ValueError, match='min_frames'): SampleConfig(min_frames=0)
    with pytest.raises(ValueError, match='start'): SampleConfig(start='June')

# ---------------------------------------------------------------- supplements: GPS, taxonomy, iNat-like close-ups

CAMERA_MD5 = { # the camera data of the `tiny` fixture (seed 3): as at commit 4fac225, plus the test camera's rock (renewed on purpose)
    'metadata/iwildcam2021_megadetector_results.json': '4741e42b0ab7687163fa47e4840e239f',
    'metadata/iwildcam2021_test_information.json': '6b75b8e6bd1036b771f342f0b9cb5d21',
    'metadata/iwildcam2021_train_annotations.json': '8ab3615b6a5276d7d39cc8f2d750cac8',
    'metadata/sample_boxes.csv': '0ad895d4fab4f9762a8e48fac05d537f',
    'metadata/sample_info.json': 'a4d7aa0f4185d93827f6d7f3e0d0f6a2',
    'metadata/sample_sequence_counts.csv': '9c9866159d2af1be01fde671caa28595',
    'metadata/sample_test_labels.json': '408192eafa9e24270523f87e19aaa783'}

def test_camera_files_are_those_written_before_the_supplements(tiny):
    "The demo's figures depend on these bytes: a change here is a new data set, and the pins must be renewed on purpose."
    import hashlib
    got = {k: hashlib.md5((tiny/k).read_bytes()).hexdigest() for k in CAMERA_MD5}
    assert got == CAMERA_MD5

def test_supplements_do_not_touch_the_camera_files(tiny, tmp_path):
    other = make_sample(tmp_path/'o', seed=3, supplements=SupplementConfig(sites=('UGA', 'NIC'), withhold=False, inat_extra=(),
                                                                            inat_images=(1, 1), inat_side=64), **TINY)
    camera = lambda d: {k: v for k,v in files(d).items() if k.split('/')[0] in ('train', 'test') or k in CAMERA_MD5}
    assert camera(other) == camera(tiny)
    assert files(other)[SAMPLE_FILES['gps']] != files(tiny)[SAMPLE_FILES['gps']]

def test_gps_file_layout_and_the_withheld_country(tiny):
    gps, places = load(tiny, 'gps'), pd.read_csv(tiny/SAMPLE_FILES['places'])
    assert places.columns.tolist() == ['location', 'split', 'country', 'latitude', 'longitude', 'withheld']
    cams = {i['location'] for k in ('train', 'test') for i in load(tiny, k)['images']}
    assert set(places.location) == cams
    assert all(re.fullmatch(r'\d+', k) for k in gps) and list(gps) == sorted(gps, key=int) # location ids as strings
    for v in gps.values():
        assert set(v) == {'latitude', 'longitude'} and all(type(x) is float for x in v.values())
        assert abs(v['latitude']) <= 90 and abs(v['longitude']) <= 180
    withheld = places[places.withheld]
    assert withheld.country.nunique() == 1 and set(places[places.country == withheld.country.iloc[0]].location) == set(withheld.location)
    assert {int(k) for k in gps} == cams - set(withheld.location) # every camera of that country missing, every other listed
    for r in places[~places.withheld].itertuples():
        assert gps[str(r.location)] == {'latitude': r.latitude, 'longitude': r.longitude}
        lat, lon = SITES[r.country]['lat'], SITES[r.country]['lon']
        assert lat[0] <= r.latitude <= lat[1] and lon[0] <= r.longitude <= lon[1]

def test_default_sample_places_cameras_in_several_countries():
    "Seed 0's six cameras: two countries listed, the third (with train and test cameras) withheld; each where most of its species live."
    locs = make_locations(SampleConfig(width=32, height=24), seed=0)
    pl = place_cameras(locs, seed=0)
    assert pl[~pl.withheld].country.nunique() >= 2 and pl[pl.withheld].country.nunique() == 1
    assert set(pl[pl.withheld].split) == {'train', 'test'}
    for o, c in zip(locs, pl.country):
        assert len(set(o.species) & set(SITES[c]['species'])) == max(len(set(o.species) & set(v['species'])) for v in SITES.values())

def test_taxonomy_file(tiny):
    from iwildcam_nb.taxonomy import read_taxonomy
    raw = pd.read_csv(tiny/SAMPLE_FILES['taxonomy'], dtype=str, keep_default_na=False)
    assert raw.columns.tolist() == ['category_id', 'name', 'class', 'order', 'family', 'genus', 'species', 'common_name']
    tax = read_taxonomy(tiny/SAMPLE_FILES['taxonomy'])
    cats = {c['id'] for c in load(tiny, 'train')['categories']} | {c['id'] for c in load(tiny, 'inat')['categories']}
    assert set(tax.category_id) == cats
    assert (tax.loc[tax.category_id > 0, ['class', 'order', 'family', 'genus', 'species']] != '').all().all()
    shared = tax[tax.category_id > 0].groupby('genus')['name'].agg(list)
    assert shared['leopardus'] == ['leopardus pardalis', 'leopardus wiedii'] # ocelot and margay: one genus (and one family)

def test_inat_file_layout_and_photos(tiny):
    d = load(tiny, 'inat')
    assert set(d) == {'info', 'images', 'annotations', 'categories', 'licenses'}
    ims = {i['id']: i for i in d['images']}
    for i in d['images']:
        assert {k: type(v) for k,v in i.items()} == {'id': int, 'width': int, 'height': int, 'file_name': str, 'license': int, 'rights_holder': str}
        assert re.fullmatch(r'train_val_images/(Mammalia|Aves)/[A-Z][a-z]+ [a-z]+/[0-9a-f]{32}\.jpg', i['file_name'])
        with Image.open(tiny/INAT_DIR/i['file_name']) as im: assert im.size == (i['width'], i['height']) and max(im.size) == 160
    assert sorted(a['image_id'] for a in d['annotations']) == sorted(ims) # one annotation per photo
    for a in d['annotations']:
        x, y, w, h = a['bbox']; im = ims[a['image_id']]
        assert x >= 0 and y >= 0 and x + w <= im['width'] and y + h <= im['height']
        assert w >= .5*im['width'] or h >= .85*im['height'] # a close-up: the animal is large
    assert [c['id'] for c in d['categories']] == sorted(c['id'] for c in d['categories']) and d['categories'][0] == {'id': 0, 'name': 'empty'}
    assert len({i['file_name'] for i in d['images']}) == len(ims)
    assert sum(1 for p in (tiny/INAT_DIR).rglob('*') if p.is_file()) == len(ims) # no other files in the folder

def test_load_coco_reads_the_inat_file_with_a_species_rare_at_the_cameras(tiny):
    from iwildcam_nb.data import IMAGE_COLS, load_coco
    inat = load_coco(tiny/SAMPLE_FILES['inat'])
    assert inat.images.columns.tolist() == IMAGE_COLS and inat.images.location.isna().all()
    assert inat.labels[['x', 'y', 'w', 'h']].notna().all().all() # pixel boxes read
    st = species_table(tiny)
    rare = st.loc[st.index > 0, 'train_images'].idxmin() # fewest training images at the cameras
    per_class = inat.labels.category_id.value_counts()
    assert per_class.get(rare, 0) >= 4 # the supplement fills the gap: SupplementConfig().inat_images[0] photos at least
    assert 50 in per_class and 50 not in st.index # the margay: close-ups only, no camera sees it
    assert set(per_class.index) == set(st.index[st.index > 0]) | {50}

def test_sample_is_current_needs_the_supplements(tiny, tmp_path):
    assert sample_is_current(tiny, seed=3, **TINY)
    assert not sample_is_current(tiny, seed=3, supplements=SupplementConfig(withhold=False), **TINY)
    old = tmp_path/'old'; shutil.copytree(tiny, old)
    (old/SAMPLE_FILES['supplements']).unlink() # as a folder made before the supplements existed
    assert not sample_is_current(old, seed=3, **TINY)
    make_sample(old, seed=3, supplements=SupplementConfig(inat_extra=()), **TINY) # rewriting drops stale close-ups
    assert not list((old/INAT_DIR).rglob('*wiedii*/*.jpg'))
    assert {p.relative_to(old).as_posix() for p in (old/INAT_DIR).rglob('*.jpg')} == {f'{INAT_DIR}/{i["file_name"]}' for i in load(old, 'inat')['images']}

def test_bad_supplement_config_is_refused():
    with pytest.raises(ValueError, match='unknown or no sites'): SupplementConfig(sites=('ATL',))
    with pytest.raises(ValueError, match='inat_extra'): SupplementConfig(inat_extra=('dragon',))
    with pytest.raises(ValueError, match='inat_fill'): SupplementConfig(inat_fill=(.5, 1.5))

def test_scenes_stands_alone():
    "scenes is imported by sample, never the reverse (no cycle), and stays light: no pandas, torch or fastai."
    code = ("import sys, iwildcam_nb.scenes; bad = [m for m in ('iwildcam_nb.sample', 'pandas', 'torch', 'fastai') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def test_sample_uses_the_scenes_catalogue():
    "One catalogue of species: what the generator validates against is what scenes draws."
    from iwildcam_nb import sample, scenes, simulate
    assert sample.SPECIES is scenes.SPECIES and simulate.SPECIES is scenes.SPECIES
    assert simulate.DEFAULT_SPECIES is scenes.DEFAULT_SPECIES
    assert set(SampleConfig().species) == set(scenes.DEFAULT_SPECIES)

@pytest.mark.parametrize('L', [4., 9.5, 120.])
def test_every_species_draws_at_any_size(L):
    "From the smallest body length the generator draws (`min_px`) to a close-up: a non-empty sprite, feet at the bottom."
    from iwildcam_nb.scenes import SPECIES, draw_animal
    for k,sp in SPECIES.items():
        for facing in (1, -1):
            rgb,m,(ax,ay) = draw_animal(sp, L, pose=1, pattern=3, facing=facing)
            assert rgb.shape[:2] == m.shape and m.any(), (k, L)
            assert 0 <= ax <= m.shape[1] and abs(ay - m.shape[0]) <= max(2, .1*m.shape[0]), (k, L, ax, ay, m.shape)

def test_night_conversion_is_gray_and_dark_above_the_flash():
    from iwildcam_nb.scenes import Location, make_scene, to_infrared
    loc = make_scene(Location('train', 1, ('agouti',), 1, 1), 64, 48, np.random.default_rng(5))
    ir = to_infrared(loc.bg, loc.horizon)
    assert ir.shape == loc.bg.shape and (ir[..., 0] == ir[..., 1]).all() and (ir[..., 1] == ir[..., 2]).all()
    assert ir[:loc.horizon//2].mean() < ir[-6:].mean() # the flash lights the near ground, not the sky

def test_landsat_arrays_one_per_camera(tiny):
    "Every camera of the sample has a Landsat-like array read without the package's loader: (N, s, s, 9) uint16."
    locs = {str(i['location']) for k in ('train', 'test') for i in load(tiny, k)['images']}
    got = {f.stem: np.load(f) for f in (tiny/RS_DIR).glob('*.npy')}
    assert set(got) == locs
    for loc, a in got.items():
        assert a.dtype == np.uint16 and a.ndim == 4 and a.shape[-1] == 9 and a.shape[1] == a.shape[2]
        dates = (tiny/RS_DIR/f'{loc}.dates.txt').read_text().split()
        assert len(dates) == len(a)
