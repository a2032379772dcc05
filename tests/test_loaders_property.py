"""Property test of the metadata loaders (Hypothesis): generated COCO-CameraTraps and MegaDetector files, valid and
mutated (fields missing, values of the wrong kind, boxes outside [0, 1], bad datetimes, unknown categories, repeated ids,
not JSON at all), either load into the documented tables or raise one InputError naming the file and a field."""
import json, os, tempfile
from pathlib import Path
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings, strategies as st
from iwildcam_nb.core import InputError
from iwildcam_nb.megadetector import DET_COLS, load_megadetector
from iwildcam_nb.data import IMAGE_COLS, load_coco

N_EXAMPLES = int(os.environ.get('LOADERS_EXAMPLES', 60)) # a few seconds per test in CI; LOADERS_EXAMPLES=3000 to hunt for bugs
SETTINGS = settings(max_examples=N_EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MUTATED = settings(SETTINGS, max_examples=2*N_EXAMPLES) # mutated files are refused early, so cheaply: twice as many
TMP = Path(tempfile.mkdtemp(prefix='loaders_property_'))

# --- values ---------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=8) | st.sampled_from(['', '1', '0', 'animal', '2020-01-01 00:00:00', 'now', 'NaN']))
any_json = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=6)
ids = st.one_of(st.integers(0, 50), st.text('abc123', min_size=1, max_size=3))
good_datetimes = st.sampled_from(['2013-06-05 05:44:19.000', '2012-03-05 17:46:03', '2019-07-01T06:00:00+02:00',
                                  '2018:06:21 10:21:33', '2020/01/02 03:04:05'])
bad_datetimes = st.sampled_from(['June 3 2020 4pm', 'now', '2020', '05/06/2013 10:00:00', '', '2020-13-45 99:99:99', '9999-99'])
unit = st.floats(0, 1)

# --- valid files --------------------------------------------------------------------------------------

@st.composite
def coco_docs(draw):
    "A valid COCO-CameraTraps document: unique image and category ids, annotations pointing at both."
    im_ids = draw(st.lists(ids, min_size=1, max_size=6, unique_by=str))
    ims = []
    for k, i in enumerate(im_ids):
        o = {'id': i, 'file_name': f'cam{k % 2}/{i}.jpg'}
        for f, s in (('width', st.integers(1, 4000)), ('height', st.integers(1, 4000)), ('location', ids),
                     ('datetime', good_datetimes | st.none()), ('seq_id', ids), ('seq_num_frames', st.integers(1, 5)),
                     ('frame_num', st.integers(0, 4))):
            if draw(st.booleans()): o[f] = draw(s)
        ims.append(o)
    cat_ids = draw(st.lists(st.integers(0, 600), min_size=1, max_size=4, unique=True))
    cats = [{'id': c, 'name': f'species {c}'} for c in cat_ids]
    anns = [{'id': f'a{k}', 'image_id': draw(st.sampled_from(im_ids)), 'category_id': draw(st.sampled_from(cat_ids))}
            for k in range(draw(st.integers(0, 6)))]
    if anns and draw(st.booleans()):
        for a in anns: a['bbox'] = [draw(st.integers(0, 100)), draw(st.integers(0, 100)), draw(st.integers(0, 50)), draw(st.integers(0, 50))]
    d = {'images': ims, 'categories': cats}
    if anns or draw(st.booleans()): d['annotations'] = anns
    return d

@st.composite
def md_docs(draw):
    "A valid MegaDetector document, batch form (`file`) or iWildCam form (`id`)."
    key = draw(st.sampled_from(['file', 'id']))
    names = draw(st.lists(ids, min_size=1, max_size=5, unique_by=str))
    ims = []
    for n in names:
        o = {key: f'{n}.jpg' if key == 'file' else n}
        if draw(st.integers(0, 5)) == 0: o['failure'] = 'Failure image access'
        else:
            o['detections'] = []
            for _ in range(draw(st.integers(0, 4))):
                x, y = draw(unit), draw(unit)
                det = {'category': draw(st.sampled_from(['1', '2', '3'])), 'conf': draw(unit),
                       'bbox': [x, y, draw(st.floats(0, 1 - x)), draw(st.floats(0, 1 - y))]}
                if draw(st.integers(0, 3)) == 0: det['classifications'] = [['5', draw(unit)]]
                o['detections'].append(det)
        ims.append(o)
    d = {'images': ims}
    if draw(st.booleans()): d['detection_categories'] = {'1': 'animal', '2': 'person', '3': 'vehicle'}
    if draw(st.booleans()): d['info'] = {'format_version': '1.4', 'detector': 'md_v5a.0.0.pt'}
    return d

# --- mutations ----------------------------------------------------------------------------------------

def _paths(o, pre=()):
    "Every path (tuple of keys and indexes) into the JSON value `o`, the root excluded."
    items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else ()
    for k, v in items:
        yield pre + (k,)
        yield from _paths(v, pre + (k,))

def _at(o, path):
    for k in path: o = o[k]
    return o

@st.composite
def mutated(draw, docs, targeted):
    "A document from `docs` with one to three changes: a generic one anywhere, or one aimed at a known weak spot."
    d = draw(docs)
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()): draw(targeted(d)); continue
        paths = list(_paths(d))
        if not paths: break
        p = draw(st.sampled_from(paths))
        parent, k = _at(d, p[:-1]), p[-1]
        how = draw(st.sampled_from(['replace', 'delete', 'duplicate']))
        if how == 'replace': parent[k] = draw(any_json)
        elif how == 'delete': del parent[k]
        elif isinstance(parent, list): parent.append(parent[k])
    return d

def coco_targeted(d):
    "One mutation of a COCO document aimed at what loaders get wrong."
    @st.composite
    def go(draw):
        ims, cats, anns = d.get('images'), d.get('categories'), d.get('annotations')
        if not (isinstance(ims, list) and ims and all(isinstance(o, dict) for o in ims)): return
        i = draw(st.integers(0, len(ims) - 1))
        kind = draw(st.sampled_from(['bad datetime', 'duplicate id', 'duplicate file', 'unknown category', 'unknown image',
                                     'wrong type', 'missing field', 'float id', 'negative box', 'duplicate category']))
        if kind == 'bad datetime': ims[i]['datetime'] = draw(bad_datetimes | any_json)
        elif kind == 'duplicate id': ims[i]['id'] = ims[0].get('id')
        elif kind == 'duplicate file': ims[i]['file_name'] = ims[0].get('file_name')
        elif kind == 'wrong type': ims[i][draw(st.sampled_from(IMAGE_COLS[1:] + ['id']))] = draw(any_json)
        elif kind == 'missing field': ims[i].pop(draw(st.sampled_from(['id', 'file_name'])), None)
        elif kind == 'float id': ims[i]['id'] = draw(st.floats(allow_nan=True, allow_infinity=True))
        elif isinstance(anns, list) and anns and all(isinstance(a, dict) for a in anns):
            a = anns[draw(st.integers(0, len(anns) - 1))]
            if kind == 'unknown category': a['category_id'] = 10**6
            elif kind == 'unknown image': a['image_id'] = 'not-an-image'
            elif kind == 'negative box': a['bbox'] = [0, 0, -5, 3]
        if kind == 'duplicate category' and isinstance(cats, list) and cats: cats.append(dict(cats[0]) if isinstance(cats[0], dict) else cats[0])
    return go()

def md_targeted(d):
    "One mutation of a MegaDetector document aimed at what loaders get wrong."
    @st.composite
    def go(draw):
        ims = d.get('images')
        if not (isinstance(ims, list) and ims and all(isinstance(o, dict) for o in ims)): return
        o = ims[draw(st.integers(0, len(ims) - 1))]
        kind = draw(st.sampled_from(['box outside', 'pixel boxes', 'bad conf', 'unknown category', 'duplicate image',
                                     'bad box', 'bad classifications', 'detections not a list', 'bad categories']))
        dets = o.get('detections')
        det = dets[0] if isinstance(dets, list) and dets and isinstance(dets[0], dict) else None
        if kind == 'duplicate image': ims.append(dict(o))
        elif kind == 'detections not a list': o['detections'] = draw(any_json)
        elif kind == 'bad categories': d['detection_categories'] = draw(any_json)
        elif det is None: return
        elif kind == 'box outside': det['bbox'] = [draw(st.floats(-2, 2)) for _ in range(4)]
        elif kind == 'pixel boxes': det['bbox'] = [draw(st.integers(0, 2000)) for _ in range(4)]
        elif kind == 'bad conf': det['conf'] = draw(st.floats(allow_nan=True, allow_infinity=True) | any_json)
        elif kind == 'unknown category': det['category'] = draw(st.sampled_from(['4', '0', 'animal', 7]))
        elif kind == 'bad box': det['bbox'] = draw(st.lists(scalars, max_size=5) | any_json)
        elif kind == 'bad classifications': det['classifications'] = draw(any_json)
    return go()

not_json = st.one_of(st.binary(max_size=40).map(lambda b: b'\xff' + b), # not UTF-8
                     st.sampled_from([b'', b'{', b'{"images": [', b'[1, 2]', b'null', b'"images"', b'{"images": {}}',
                                      b'{"images": []}', b'{"images": [1, 2]}', b'{"images": [null]}', b'\xef\xbb\xbf{}']),
                     st.text(max_size=30).map(str.encode))

# --- the property ---------------------------------------------------------------------------------------

def write(doc, name)->Path:
    p = TMP/name
    p.write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc, allow_nan=True).encode())
    return p

def check_refusal(e:InputError, path:Path):
    "One InputError that names the file and a field."
    assert e.path == str(path) and str(e).startswith(f'{path}: '), str(e)
    assert isinstance(e.field, str) and e.field.strip(), str(e)
    assert isinstance(e.reason, str) and e.reason.strip(), str(e)

def check_coco(t):
    "The documented tables of `load_coco`."
    im, lab, cat = t.images, t.labels, t.categories
    assert list(im.columns) == IMAGE_COLS and len(im) >= 1
    assert im.image_id.notna().all() and im.image_id.is_unique and im.file_name.notna().all()
    assert all(isinstance(v, str) for v in im.image_id) and pd.api.types.is_datetime64_dtype(im.datetime)
    for c in ('width', 'height', 'seq_num_frames', 'frame_num'): assert str(im[c].dtype) == 'Int64', c
    assert cat.category_id.is_unique and cat.category_id.dtype == np.int64 and cat.name.notna().all()
    assert {'image_id', 'category_id'} <= set(lab.columns)
    assert lab.image_id.isin(im.image_id).all() and lab.category_id.isin(cat.category_id).all()
    if 'w' in lab: assert ((lab.w >= 0) | lab.w.isna()).all() and ((lab.h >= 0) | lab.h.isna()).all()

def check_detections(df):
    "The documented detections table: boxes inside the unit square with area, det_idx by descending conf per image."
    assert list(df.columns[:len(DET_COLS)]) == DET_COLS
    if not len(df): return
    b = df[['x', 'y', 'w', 'h']].to_numpy(float)
    assert np.isfinite(b).all() and (b[:, :2] >= 0).all() and (b[:, 2:] > 0).all() and (b[:, :2] + b[:, 2:] <= 1 + 1e-3).all()
    assert df.conf.between(0, 1).all() and df.image_id.notna().all()
    assert df.category.isin(['animal', 'person', 'vehicle']).all()
    for _, g in df.groupby('image_id'):
        assert sorted(g.det_idx) == list(range(len(g)))
        assert (np.diff(g.sort_values('det_idx').conf.to_numpy()) <= 0).all()

def load_or_refuse(load, doc, name, check):
    "The property: `load` either returns tables that pass `check` or raises one InputError naming file and field."
    p = write(doc, name)
    try: out = load(p)
    except InputError as e:
        check_refusal(e, p); event('refused'); return 'refused'
    check(out); event('loaded')
    return 'loaded'

@SETTINGS
@given(doc=coco_docs())
def test_valid_coco_loads(doc):
    assert load_or_refuse(load_coco, doc, 'valid.json', check_coco) == 'loaded'

@MUTATED
@given(doc=st.one_of(mutated(coco_docs(), coco_targeted), not_json))
def test_mutated_coco_loads_or_is_refused(doc):
    load_or_refuse(load_coco, doc, 'train.json', check_coco)

@SETTINGS
@given(doc=md_docs())
def test_valid_megadetector_loads(doc):
    assert load_or_refuse(load_megadetector, doc, 'md_valid.json', check_detections) == 'loaded'

@MUTATED
@given(doc=st.one_of(mutated(md_docs(), md_targeted), not_json))
def test_mutated_megadetector_loads_or_is_refused(doc):
    load_or_refuse(load_megadetector, doc, 'md.json', check_detections)

@SETTINGS
@given(coco=coco_docs(), md=mutated(md_docs(), md_targeted))
def test_megadetector_with_an_images_table(coco, md):
    "With an images table, entries are matched to it (or dropped): still the documented table, or one InputError."
    images = load_coco(write(coco, 'images.json')).images
    for unmatched in ('keep', 'drop'):
        load_or_refuse(lambda p: load_megadetector(p, images=images, unmatched=unmatched), md, 'md_images.json', check_detections)
