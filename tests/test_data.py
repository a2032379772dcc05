"""Bad input to the metadata loaders: each kind gets one clear InputError naming file and field, or a logged, counted
skip. Plus the loaders on the real MegaDetector v5a output that ships in tests/data/real/speciesnet."""
import json, logging
import numpy as np
import pandas as pd
import pytest
from iwildcam_nb.core import InputError
from iwildcam_nb.data import load_coco, IMAGE_COLS
from iwildcam_nb.megadetector import read_megadetector, load_megadetector, boxes_per_image, DET_COLS
from iwildcam_nb.cameras import rebuild_sequences, sequence_agreement, split_by_location

def img(i, **kw):
    return dict(id=f'i{i}', file_name=f'i{i}.jpg', width=64, height=48, location=i % 3,
                datetime=f'2020-01-01 00:00:{i:02d}.000', seq_id=f's{i}', seq_num_frames=1, frame_num=0, **kw)

def coco(n=4, **over):
    d = {'images': [img(i) for i in range(n)], 'categories': [{'id': 0, 'name': 'empty'}, {'id': 7, 'name': 'puma'}],
         'annotations': [{'id': f'a{i}', 'image_id': f'i{i}', 'category_id': 7 if i % 2 else 0} for i in range(n)]}
    d.update(over)
    return d

def write(tmp_path, obj, name='train.json'):
    p = tmp_path/name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p

def md_file(tmp_path, images, name='md.json', **top):
    return write(tmp_path, {'images': images, 'detection_categories': {'1': 'animal', '2': 'person', '3': 'vehicle'}, **top}, name)

def box(conf=0.9, bbox=(0.1, 0.1, 0.2, 0.2), cat='1'): return {'category': cat, 'conf': conf, 'bbox': list(bbox)}

def raises(f, *parts):
    "Call `f`, expecting one InputError whose message contains every part."
    with pytest.raises(InputError) as e: f()
    for p in parts: assert p in str(e.value), str(e.value)
    return e.value

# --- bad input, one test each ---

def test_missing_file(tmp_path):
    raises(lambda: load_coco(tmp_path/'nope.json'), 'nope.json: -: file not found')
    raises(lambda: load_megadetector(tmp_path/'nope.json'), 'nope.json: -: file not found')

def test_malformed_json(tmp_path):
    e = raises(lambda: load_coco(write(tmp_path, '{"images": [{"id": "a",')), 'train.json', 'malformed JSON')
    assert e.field.startswith('line 1 column')

def test_not_an_object(tmp_path):
    raises(lambda: load_coco(write(tmp_path, [1, 2])), 'train.json: -: expected a JSON object')

def test_missing_image_id(tmp_path):
    d = coco(); del d['images'][3]['id']
    raises(lambda: load_coco(write(tmp_path, d)), 'train.json: images[3].id: required field is missing')

def test_missing_file_name(tmp_path):
    d = coco(); del d['images'][2]['file_name']
    raises(lambda: load_coco(write(tmp_path, d)), 'train.json: images[2].file_name: required field is missing')

def test_missing_annotation_image_id(tmp_path):
    d = coco(); del d['annotations'][0]['image_id']
    raises(lambda: load_coco(write(tmp_path, d)), 'train.json: annotations[0].image_id: required field is missing')

def test_unknown_category(tmp_path):
    d = coco(n=14); d['annotations'][12]['category_id'] = 999
    raises(lambda: load_coco(write(tmp_path, d)), 'train.json: annotations[12].category_id: unknown category 999')

def test_unknown_image(tmp_path):
    d = coco(); d['annotations'][1]['image_id'] = 'ghost'
    raises(lambda: load_coco(write(tmp_path, d)), "train.json: annotations[1].image_id: unknown image 'ghost'")

def test_empty_data_set(tmp_path):
    raises(lambda: load_coco(write(tmp_path, coco(n=0))), 'train.json: images: empty list')
    raises(lambda: load_coco(write(tmp_path, {'annotations': []})), 'train.json: images: required field is missing')
    raises(lambda: load_megadetector(md_file(tmp_path, [])), 'md.json: images: empty list')

def test_duplicate_image_id(tmp_path):
    d = coco(); d['images'][2]['id'] = 'i0'
    raises(lambda: load_coco(write(tmp_path, d)), "train.json: images[2].id: duplicate image id 'i0'")

def test_bad_width(tmp_path):
    d = coco(); d['images'][1]['width'] = 'wide'
    raises(lambda: load_coco(write(tmp_path, d)), "train.json: images[1].width: expected a whole number, got 'wide'")

def test_annotations_without_categories(tmp_path):
    d = coco(); del d['categories']
    raises(lambda: load_coco(write(tmp_path, d)), 'train.json: categories: required field is missing')

def test_image_without_datetime_is_logged_nat(tmp_path, caplog):
    d = coco(n=5); del d['images'][1]['datetime']; d['images'][3]['datetime'] = 'garbage'
    with caplog.at_level(logging.INFO, logger='iwildcam_nb'): t = load_coco(write(tmp_path, d))
    assert t.images.datetime.isna().tolist() == [False, True, False, True, False]
    msgs = caplog.text
    assert '1 of 5 images have no datetime' in msgs
    assert '1 of 5 datetimes could not be parsed' in msgs and 'images[3].datetime' in msgs
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): seqs = rebuild_sequences(t.images)
    assert (seqs.seq_num_frames[t.images.datetime.isna()] == 1).all()
    assert '2 of 5 images have no datetime or location' in caplog.text

def test_no_image_has_a_datetime_warns(tmp_path, caplog):
    "A file where no image has a datetime is worth a warning too: night counts and time-based sequences cannot be had."
    d = coco(n=3)
    for o in d['images']: del o['datetime']
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): t = load_coco(write(tmp_path, d))
    assert t.images.datetime.isna().all()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and 'train.json' in warned[0] and 'no image has a datetime' in warned[0], warned
    assert 'night counts' in warned[0] and 'sequences rebuilt from time' in warned[0] and 'unknown' in warned[0]

def test_box_outside_unit_square(tmp_path, caplog):
    p = md_file(tmp_path, [{'id': 'i0', 'detections': [box(0.9), box(0.8, (0.9, 0.5, 0.3, 0.3))]},
                           {'id': 'i1', 'detections': [box(0.7, (1.2, 0.5, 0.1, 0.1))]}])
    raises(lambda: load_megadetector(p, bad_boxes='error'), 'md.json: images[0].detections[1].bbox: box [0.9, 0.5, 0.3, 0.3] lies outside')
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): d = load_megadetector(p)
    assert '2 of 3 boxes lay outside [0, 1]' in caplog.text and '1 with no area left dropped' in caplog.text
    assert d.image_id.tolist() == ['i0', 'i0']  # i1's box lies wholly outside: dropped
    np.testing.assert_allclose(d[['x', 'y', 'w', 'h']].iloc[1], [0.9, 0.5, 0.1, 0.3])
    assert (d.x + d.w <= 1).all() and (d.y + d.h <= 1).all()

def test_rounding_overshoot_is_not_bad(tmp_path, caplog):
    p = md_file(tmp_path, [{'id': 'i0', 'detections': [box(0.9, (0.5, 0.5, 0.50001, 0.2))]}])
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): d = load_megadetector(p, bad_boxes='error')
    assert d.w.iloc[0] == pytest.approx(0.5) and caplog.text == ''

def test_malformed_bbox(tmp_path):
    p = md_file(tmp_path, [{'id': 'i0', 'detections': [box(), {'category': '1', 'conf': 0.5, 'bbox': [0.1, 0.2]}]}])
    raises(lambda: load_megadetector(p), 'md.json: images[0].detections[1].bbox: expected [x, y, width, height]')

def test_missing_detection_field(tmp_path):
    p = md_file(tmp_path, [{'id': 'i0', 'detections': []}, {'id': 'i1', 'detections': [{'category': '1', 'bbox': [0, 0, 1, 1]}]}])
    raises(lambda: load_megadetector(p), 'md.json: images[1].detections[0].conf: required field is missing')

def test_unknown_detection_category(tmp_path):
    p = md_file(tmp_path, [{'id': 'i0', 'detections': [box(cat='9')]}])
    raises(lambda: load_megadetector(p), "md.json: images[0].detections[0].category: unknown detection category '9'")

def test_megadetector_failures_are_kept(tmp_path, caplog):
    p = md_file(tmp_path, [{'file': 'a.jpg', 'detections': [box()]}, {'file': 'b.jpg', 'failure': 'Failure image access'},
                           {'file': 'c.jpg', 'failure': 'Failure inference', 'detections': None}, {'file': 'd.jpg', 'detections': []}])
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): r = read_megadetector(p)
    assert 'failed on 2 of 4 images' in caplog.text
    assert r.failures.file.tolist() == ['b.jpg', 'c.jpg']
    assert r.per_image.n_boxes.tolist() == [1, 0, 0, 0]
    assert r.per_image.max_conf.isna().tolist() == [False, True, True, False]
    assert r.detections.image_id.tolist() == ['a.jpg']

def test_md_image_without_id_or_file(tmp_path):
    raises(lambda: load_megadetector(md_file(tmp_path, [{'detections': []}])), 'md.json: images[0]: expected a "file"')
    p = md_file(tmp_path, [{'file': 'a.jpg', 'detections': []}, {'detections': []}])
    raises(lambda: load_megadetector(p), 'md.json: images[1].file: required field is missing')

def test_bad_bad_boxes_option(tmp_path):
    with pytest.raises(ValueError, match="'clip' or 'error'"): load_megadetector(md_file(tmp_path, [{'id': 'a'}]), bad_boxes='drop')

# --- the shapes found in the field ---

def test_reads_2020_2021_and_inat_shapes(tmp_path):
    d21 = coco(n=6); d21['images'][0]['sub_location'] = 1
    t21 = load_coco(write(tmp_path, d21, 'iwildcam2021_train_annotations.json'))
    assert t21.images.columns.tolist() == IMAGE_COLS and t21.images.sub_location.notna().sum() == 1
    assert t21.categories['count'].tolist() == [3, 3]
    test21 = load_coco(write(tmp_path, {'images': d21['images'], 'categories': d21['categories']}, 'test.json'))
    assert len(test21.labels) == 0 and test21.categories['count'].tolist() == [0, 0]
    d20 = coco(n=4); d20['categories'] = [dict(c, count=99) for c in d20['categories']]
    assert load_coco(write(tmp_path, d20, 'iwildcam2020.json')).categories['count'].tolist() == [99, 99]
    inat = {'images': [{'id': 5, 'file_name': 'a/b.jpg', 'width': 10, 'height': 8}], 'categories': [{'id': 7, 'name': 'puma'}],
            'annotations': [{'id': 1, 'image_id': 5, 'category_id': 7, 'bbox': [1, 2, 3, 4]}]}
    ti = load_coco(write(tmp_path, inat, 'inat.json'))
    assert ti.images.image_id.tolist() == ['5'] and ti.labels.image_id.tolist() == ['5']
    assert ti.labels[['x', 'y', 'w', 'h']].iloc[0].tolist() == [1, 2, 3, 4]
    assert ti.images[['location', 'datetime', 'seq_id']].isna().all().all()

def test_location_ids_compare_as_strings(tmp_path):
    a = coco(n=3)
    b = coco(n=3); [o.update(location=str(o['location'])) for o in b['images']]
    la, lb = (load_coco(write(tmp_path, d, f'{n}.json')).images.location for n, d in (('a', a), ('b', b)))
    assert la.tolist() == lb.tolist() == ['0', '1', '2']

def test_id_keyed_detections_get_file_from_images(tmp_path):
    t = load_coco(write(tmp_path, coco(n=3)))
    p = md_file(tmp_path, [{'id': 'i1', 'max_detection_conf': 0.9, 'detections': [box(0.3), box(0.9)]}, {'id': 'zz', 'detections': [box()]}])
    d = load_megadetector(p, images=t.images)
    assert d.columns.tolist() == DET_COLS
    assert d.file.tolist()[:2] == ['i1.jpg', 'i1.jpg'] and pd.isna(d.file.iloc[2])
    assert d.det_idx.tolist() == [0, 1, 0] and d.conf.tolist()[:2] == [0.9, 0.3]

def test_batch_files_matched_to_images(tmp_path):
    t = load_coco(write(tmp_path, {'images': [{'id': 'x1', 'file_name': 'cam/a.jpg'}]}))
    p = md_file(tmp_path, [{'file': 'cam\\a.jpg', 'detections': [box()]}, {'file': 'cam/b.jpg', 'detections': [box()]}])
    d = load_megadetector(p, images=t.images)
    assert d.image_id.tolist() == ['x1', 'cam/b.jpg'] and d.file.tolist() == ['cam\\a.jpg', 'cam/b.jpg']

def test_sequences_and_split():
    t0 = pd.Timestamp('2020-01-01')
    ims = pd.DataFrame({'image_id': list('abcdef'), 'location': ['1', '1', '1', '2', '2', '3'],
                        'datetime': [t0 + pd.Timedelta(seconds=s) for s in (0, 10, 100, 0, 5, 0)],
                        'seq_id': ['A', 'A', 'B', 'C', 'C', 'D']})
    r = rebuild_sequences(ims, gap_s=20)
    assert r.seq_num_frames.tolist() == [2, 2, 1, 2, 2, 1] and r.frame_num.tolist() == [0, 1, 0, 0, 1, 0]
    assert sequence_agreement(ims, r)['exact'] == 1.0
    assert sequence_agreement(ims, rebuild_sequences(ims, gap_s=200))['merged'] > 0
    s = split_by_location(ims, valid_pct=0.3, seed=1)
    assert s.groupby('location').split.nunique().max() == 1 and set(s.split) == {'train', 'valid'}
    assert s.split.tolist() == split_by_location(ims, valid_pct=0.3, seed=1).split.tolist()

# --- the real MegaDetector v5a output (batch format 1.4) ---

def test_real_mdv5a(speciesnet_dir):
    r = read_megadetector(speciesnet_dir/'md_results_mdv5a.json')
    raw = json.loads((speciesnet_dir/'md_results_mdv5a.json').read_text())
    assert len(r.per_image) == len(raw['images'])
    assert r.per_image.n_boxes.tolist() == [len(o.get('detections') or []) for o in raw['images']]
    assert len(r.failures) == 0
    n = boxes_per_image(r.detections, r.per_image.image_id, min_conf=0.5)
    assert n['african_elephants.jpg'] == 6
    assert r.per_image.set_index('file').n_boxes['african_elephants.jpg'] == 15
    assert set(r.detections.category) == {'animal', 'person', 'vehicle'}
    d = r.detections
    assert ((d.x >= 0) & (d.y >= 0) & (d.x + d.w <= 1) & (d.y + d.h <= 1)).all()
    assert (d.groupby('image_id').conf.diff().dropna() <= 0).all()  # descending within each image
    assert (d.groupby('image_id').det_idx.min() == 0).all()

# --- regressions from the review of the data layer, one test per finding ---

def test_datetimes_explicit_formats_wall_clock(caplog):
    from iwildcam_nb.fields import parse_datetimes
    dst = parse_datetimes(['2020-03-29T01:%02d:00+01:00' % i for i in range(50)] + ['2020-03-29T03:10:00+02:00'])
    assert dst.notna().all() and dst.iloc[-1] == pd.Timestamp('2020-03-29 03:10') and dst.iloc[0] == pd.Timestamp('2020-03-29 01:00')
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'):
        d = parse_datetimes(['now', 'today', '2020', '01/02/2020 10:00:00', '13/02/2020 10:00:00', '2020-02-13 10:00:00'])
    assert d.isna().tolist() == [True] * 5 + [False]  # no guessing: relative words, a bare year, ambiguous day/month
    assert "5 of 6 datetimes could not be parsed" in caplog.text and "'now'" in caplog.text
    dayfirst = parse_datetimes(['01/02/2020 10:00:00', '13/02/2020 10:00:00'], formats=('%d/%m/%Y %H:%M:%S',))
    assert dayfirst.dt.month.tolist() == [2, 2]  # an explicit choice reads both the same way

def test_bad_values_give_one_input_error(tmp_path):
    for w, shown in ((1e30, '1e+30'), (2**63, str(2**63))):
        d = coco(); d['images'][1]['width'] = w
        raises(lambda: load_coco(write(tmp_path, d)), f'train.json: images[1].width: expected a whole number, got {shown}')
    for cats in (['animal', 'person'], 'animal'):
        p = md_file(tmp_path, [{'id': 'i0', 'detections': [box()]}], detection_categories=cats)
        raises(lambda: load_megadetector(p), 'md.json: detection_categories: expected an object')
    for cls in ([['0']], 'agouti'):
        p = md_file(tmp_path, [{'id': 'i0', 'detections': [box(), dict(box(), classifications=cls)]}])
        raises(lambda: load_megadetector(p), 'md.json: images[0].detections[1].classifications: expected a list of [class_id, conf] pairs')
    t0 = pd.Timestamp('2020-03-29 00:59:50')
    naive = pd.DataFrame({'image_id': list('abc'), 'location': '1', 'datetime': [t0, t0 + pd.Timedelta(seconds=5), t0 + pd.Timedelta(hours=1)]})
    aware = naive.assign(datetime=naive.datetime.dt.tz_localize('Europe/Berlin'))
    assert rebuild_sequences(aware).seq_num_frames.tolist() == rebuild_sequences(naive).seq_num_frames.tolist() == [2, 2, 1]
    raises(lambda: split_by_location(naive.drop(columns='location')), 'location: no such column')

def test_detection_conf_range(tmp_path):
    for conf in (7.5, -1, True, '0.5'):
        p = md_file(tmp_path, [{'id': 'i0', 'detections': [box(), box(conf)]}])
        raises(lambda: load_megadetector(p), f'md.json: images[0].detections[1].conf: expected a confidence in [0, 1], got {conf!r}')
    assert load_megadetector(md_file(tmp_path, [{'id': 'i0', 'detections': [box(0), box(1)]}])).conf.tolist() == [1.0, 0.0]

def test_megadetector_duplicate_images(tmp_path):
    p = md_file(tmp_path, [{'id': 'i0', 'detections': [box()]}, {'id': 'i1'}, {'id': 'i0', 'detections': []}])
    raises(lambda: load_megadetector(p), "md.json: images[2].id: image 'i0' is listed twice")
    p = md_file(tmp_path, [{'file': 'cam/a.jpg', 'detections': [box()]}, {'file': 'cam\\a.jpg', 'detections': [box()]}])
    raises(lambda: load_megadetector(p), 'md.json: images[1].file:', 'is listed twice')

def test_split_by_location_lands_near_target():
    ims = pd.DataFrame({'image_id': range(1000), 'location': ['big'] * 900 + [f'l{i // 10}' for i in range(100)]})
    for seed in range(6):
        s = split_by_location(ims, valid_pct=0.2, seed=seed)
        assert (s.split == 'valid').mean() == pytest.approx(0.1)  # the nearest whole-location share to 0.2 (the other is 0.9)
        assert s.split.tolist() == split_by_location(ims, valid_pct=0.2, seed=seed).split.tolist()
    rng = np.random.default_rng(0)
    many = pd.DataFrame({'image_id': range(5000), 'location': rng.zipf(1.5, 5000) % 200})
    shares = [(split_by_location(many, valid_pct=0.2, seed=k).split == 'valid').mean() for k in range(6)]
    assert max(abs(np.array(shares) - 0.2)) < 0.02, shares

def test_coco_refuses_silent_coercions(tmp_path):
    cases = [('images', 1, 'width', True, 'images[1].width: expected a whole number, got True'),
             ('images', 1, 'width', -5, 'images[1].width: expected a whole number >= 1, got -5'),
             ('images', 2, 'location', [1], 'images[2].location: expected a string or a whole number, got [1]'),
             ('images', 2, 'location', {'a': 1}, "images[2].location: expected a string or a whole number, got {'a': 1}"),
             ('annotations', 0, 'bbox', ['1', 2, 3, 4], "annotations[0].bbox: expected [x, y, width, height] (4 finite numbers), got ['1', 2, 3, 4]"),
             ('annotations', 3, 'bbox', [1, 2, -3, 4], 'annotations[3].bbox: box [1, 2, -3, 4] has a negative width or height')]
    for part, i, key, v, msg in cases:
        d = coco(); d[part][i][key] = v
        if key == 'bbox': [a.setdefault('bbox', [0, 0, 5, 5]) for a in d['annotations']]
        raises(lambda: load_coco(write(tmp_path, d)), f'train.json: {msg}')
    inat = {'images': [{'id': 5.0, 'file_name': 'a.jpg'}], 'categories': [{'id': 7, 'name': 'puma'}],
            'annotations': [{'id': 1, 'image_id': 5, 'category_id': 7}]}
    t = load_coco(write(tmp_path, inat, 'inat.json'))
    assert t.images.image_id.tolist() == t.labels.image_id.tolist() == ['5']

def test_unmatched_detections_warn(tmp_path, caplog):
    t = load_coco(write(tmp_path, coco(n=3)))
    p = md_file(tmp_path, [{'id': 'i1', 'detections': [box()]}, {'id': 'zz', 'detections': [box()]}, {'id': 'yy'}])
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): load_megadetector(p, images=t.images)
    assert "2 of 3 image ids are not in the images table" in caplog.text and "'zz'" in caplog.text
    caplog.clear()
    p = md_file(tmp_path, [{'file': 'i1.jpg', 'detections': [box()]}, {'file': 'elsewhere/x.jpg', 'detections': [box()]}], 'mdb.json')
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): load_megadetector(p, images=t.images)
    assert "1 of 2 files are not in the images table" in caplog.text and 'elsewhere/x.jpg' in caplog.text

def test_sequence_keys_unambiguous_and_ids_unique():
    t0 = pd.Timestamp('2020-01-01')
    ims = pd.DataFrame({'image_id': list('ab'), 'location': ['1/2', '1'], 'sub_location': [None, '2'], 'datetime': [t0, t0]})
    r = rebuild_sequences(ims)
    assert r.seq_id.nunique() == 2 and r.seq_num_frames.tolist() == [1, 1]
    fast = pd.DataFrame({'image_id': list('abc'), 'location': '1', 'datetime': [t0 + pd.Timedelta(seconds=s) for s in (0, 0.6, 0.8)]})
    r = rebuild_sequences(fast, gap_s=0.5)
    assert r.seq_num_frames.tolist() == [1, 2, 2] and r.seq_id.nunique() == 2
    assert (r.groupby('seq_id').size() == r.groupby('seq_id').seq_num_frames.first()).all()

def test_clipping_keeps_in_range_boxes_exact(tmp_path):
    p = md_file(tmp_path, [{'id': 'i0', 'detections': [box(0.9, (0.1, 0.1, 0.2, 0.2)), box(0.8, (0.9, 0.5, 0.3, 0.3))]}])
    d = load_megadetector(p)
    assert d[['x', 'y', 'w', 'h']].iloc[0].tolist() == [0.1, 0.1, 0.2, 0.2]  # not 0.20000000000000004
    np.testing.assert_allclose(d[['x', 'y', 'w', 'h']].iloc[1], [0.9, 0.5, 0.1, 0.3])

def test_load_megadetector_box_tol(tmp_path):
    p = md_file(tmp_path, [{'id': 'i0', 'detections': [box(0.9, (0.5, 0.5, 0.505, 0.2))]}])
    raises(lambda: load_megadetector(p, bad_boxes='error'), 'images[0].detections[0].bbox')
    assert load_megadetector(p, bad_boxes='error', box_tol=0.01).w.iloc[0] == pytest.approx(0.5)

def test_pixel_coordinates_refused(tmp_path):
    p = md_file(tmp_path, [{'id': f'i{i}', 'detections': [box(0.9, (100 + i, 50, 300, 200))]} for i in range(20)])
    raises(lambda: load_megadetector(p), 'md.json: images[0].detections[0].bbox: 20 of 20 boxes have coordinates above 1', 'pixel coordinates')

def test_duplicate_file_names_and_annotation_ids(tmp_path, caplog):
    d = coco(); d['images'][2]['file_name'] = 'i0.jpg'
    raises(lambda: load_coco(write(tmp_path, d)), "train.json: images[2].file_name: duplicate file_name 'i0.jpg'")
    d = coco(); d['annotations'][3]['id'] = d['annotations'][2]['id'] = 'a0'
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): t = load_coco(write(tmp_path, d))
    assert len(t.labels) == 4 and '2 of 4 annotation ids are duplicates' in caplog.text and 'annotations[2].id' in caplog.text

# --- keeping only the images of an images table ---

def test_unmatched_drop_matches_backslash_files(tmp_path, caplog):
    "As `crops --coco` calls it: a batch-format `file` written on Windows matches the COCO `file_name` with slashes."
    c = coco(3)
    c['images'][0]['file_name'] = 'cam1/a.jpg'
    images = load_coco(write(tmp_path, c)).images
    p = md_file(tmp_path, [{'file': 'cam1\\a.jpg', 'detections': [box(0.9), box(0.5)]},
                           {'file': 'other\\b.jpg', 'detections': [box(0.8)]},
                           {'file': 'i1.jpg', 'detections': []}])
    with caplog.at_level(logging.INFO, logger='iwildcam_nb'): d = load_megadetector(p, images=images, unmatched='drop')
    assert d.image_id.tolist() == ['i0', 'i0'] and d.file.tolist() == ['cam1\\a.jpg'] * 2
    assert [(r.levelno, '1 of 3 files are not in the images table: dropped' in r.message) for r in caplog.records] == [(logging.INFO, True)]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger='iwildcam_nb'): kept = load_megadetector(p, images=images)
    assert kept.image_id.tolist() == ['i0', 'i0', 'other\\b.jpg'] # the default keeps them, with a warning
    assert [r.levelno for r in caplog.records] == [logging.WARNING]

def test_unmatched_drop_by_id(tmp_path):
    images = load_coco(write(tmp_path, coco(2))).images
    r = read_megadetector(md_file(tmp_path, [{'id': 'i1', 'detections': [box()]}, {'id': 'zz', 'detections': [box()]},
                                             {'id': 'zz2', 'failure': 'Failure image access', 'detections': None}]),
                          images=images, unmatched='drop')
    assert r.detections.image_id.tolist() == ['i1'] and r.detections.file.tolist() == ['i1.jpg']
    assert r.per_image.image_id.tolist() == ['i1'] and len(r.failures) == 0
    with pytest.raises(ValueError, match="unmatched must be"): read_megadetector(md_file(tmp_path, [{'id': 'a'}]), unmatched='no')
