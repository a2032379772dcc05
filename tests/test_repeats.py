"""Repeat detections (`iwildcam_nb.repeats`) beyond the notebook's small lessons: MegaDetector's loop, box for
box, on random cameras; a MegaDetector file with camera folders; a person's list edited as text (and as a
spreadsheet saves it) and read back; every malformed list refused by line and column; the real elephants and
their contact sheet; big cameras in seconds; the embedded data set, where no real animal is flagged."""
import csv, json, time
import numpy as np, pandas as pd, pytest
from PIL import Image
from conftest import REAL
from iwildcam_nb.core import InputError, write_csv
from iwildcam_nb.data import load_coco
from iwildcam_nb.megadetector import load_megadetector
from iwildcam_nb.repeats import (RepeatConfig, TABLE_COLS, box_iou, leader_clusters, find_repeats,
                                 mark_repeats, drop_repeats, repeat_table, read_repeats, apply_review,
                                 repeat_sheet, flag_repeats)

def md_loop(b, g, iou):
    "MegaDetector's `_find_matches_in_directory`, plainly: each box against every leader of its group."
    leads, out = [], []
    for i in range(len(b)):
        L = np.array(leads, int)
        hit = np.flatnonzero((g[L] == g[i]) & (box_iou(b[i], b[L]) >= iou)).tolist()
        out += [(i, k) for k in hit]
        if not hit: out.append((i, len(leads))); leads.append(i)
    return pd.DataFrame(out, columns=['box', 'cluster']).sort_values(['cluster', 'box'], ignore_index=True)

def random_camera(rng, n_moving=500, n_rocks=6, per_rock=30, jitter=.002, rock_min=.01):
    "Boxes moving at any size, and rocks boxed again and again with a jitter; 4 digits, as MegaDetector."
    wh = rng.uniform(.005, .6, (n_moving, 2))
    moving = np.c_[rng.uniform(0, 1, (n_moving, 2))*(1 - wh), wh]
    rocks = np.c_[rng.uniform(0, .7, (n_rocks, 2)), rng.uniform(rock_min, .25, (n_rocks, 2))]
    rocks = np.repeat(rocks, per_rock, axis=0)
    b = np.round(np.r_[moving, rocks + rng.normal(0, jitter, rocks.shape)], 4)
    b[:, 2:] = np.maximum(b[:, 2:], 1e-4)
    return b[rng.permutation(len(b))]

@pytest.mark.parametrize('seed', range(8))
def test_leader_clusters_is_megadetectors_loop(seed):
    rng = np.random.default_rng(seed)
    b = random_camera(rng, jitter=[.0005, .002, .005][seed % 3])
    b = np.r_[b, b[:40]] # exact repeats too (ties at every threshold)
    g = rng.integers(0, 3, len(b))
    iou, chunk = [.9, .95, .8, .5][seed % 4], [1024, 7, 64, 333][seed // 2 % 4]
    assert leader_clusters(b, g, iou, chunk).equals(md_loop(b, g, iou))

def test_pairs_exactly_at_the_threshold():
    "IoU exactly 0.9 joins (>=), as in MegaDetector; just below does not."
    b = np.array([[0, 0, .5, .5], [0, 0, .5, .45], [0, 0, .5, .4499]])
    test = leader_clusters(b, iou=.9).groupby('cluster').box.apply(list).tolist()
    assert test == [[0, 1], [2]]

def md_file(path, cams:dict):
    "A MegaDetector batch file: {folder: [boxes per image]}, each box (category, conf, [x, y, w, h])."
    box = lambda k, p, b: {'category': k, 'conf': p, 'bbox': list(b)}
    ims = [{'file': f'{cam}/img{i:03d}.jpg', 'detections': [box(*o) for o in dets]}
           for cam, frames in cams.items() for i, dets in enumerate(frames)]
    path.write_text(json.dumps({'images': ims, 'detection_categories': {'1': 'animal', '2': 'person'}}))
    return path

ROCK = (.6, .7, .1, .08)

def rock_frames(n, rock=ROCK, conf=.5):
    "n frames with the rock boxed (and a moving animal in every other frame)."
    return [[('1', conf, rock)] + ([('1', .9, (.01*i, .1, .2, .2))] if i % 2 else []) for i in range(n)]

def test_cameras_by_folder_as_megadetector(tmp_path):
    cams = {'siteA/cam1': rock_frames(25), 'siteA/cam2': rock_frames(15)}
    dets = load_megadetector(md_file(tmp_path/'md.json', cams))
    ims = pd.DataFrame({'image_id': dets.image_id.unique(), 'location': 'siteA'})
    ims['file_name'] = ims.image_id
    by_folder = find_repeats(dets, ims, RepeatConfig(camera='folder'))
    assert by_folder.groupby('camera').size().to_dict() == {'siteA/cam1': 25}
    by_location = find_repeats(dets, ims) # one location: the two folders are one camera
    assert by_location.groupby('camera').size().to_dict() == {'siteA': 40}

def two_rocks(tmp_path, n=25, extra=0):
    "A camera with two rocks boxed `n` times (plus `extra` later frames), as detections and images tables."
    frames = [f + [('1', .4, (.1, .1, .05, .05))] for f in rock_frames(n + extra)]
    dets = load_megadetector(md_file(tmp_path/'md.json', {'cam': frames}))
    ims = pd.DataFrame({'image_id': dets.image_id.unique(), 'location': 'L1'})
    return dets, ims

def test_edited_list_round_trip(tmp_path):
    dets, ims = two_rocks(tmp_path)
    marked, table = flag_repeats(dets, ims)
    assert marked.repeat.sum() == 50 and table.keep.tolist() == ['no', 'no']
    write_csv(table, tmp_path/'repeats.csv')
    rows = list(csv.DictReader(open(tmp_path/'repeats.csv')))
    rows[1]['keep'] = ' Yes ' # the person keeps the cluster at (0.6, 0.7): an animal asleep
    with open(tmp_path/'repeats.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    marked, table = flag_repeats(dets, ims, review=tmp_path/'repeats.csv')
    assert marked[marked.repeat].x.round(2).unique().tolist() == [.1]
    assert table.keep.tolist() == ['no', 'yes'] # the new list remembers the verdict
    assert len(drop_repeats(marked)) == len(dets) - 25
    # the same list on a later run with 10 more photos: the new boxes follow the verdicts
    more, ims2 = two_rocks(tmp_path, extra=10)
    marked2, table2 = flag_repeats(more, ims2, review=tmp_path/'repeats.csv')
    assert marked2.repeat.sum() == 35 and table2.occurrences.tolist() == [35, 35]

def test_list_saved_by_a_spreadsheet(tmp_path):
    "Semicolons between fields, decimal commas, a byte-order mark and CRLF, as some spreadsheets save a list."
    dets, ims = two_rocks(tmp_path)
    table = flag_repeats(dets, ims)[1].assign(keep=['no', 'yes'])
    text = table.astype(str).apply(lambda c: c.str.replace('.', ',', regex=False) if c.name in 'xywh' else c)
    text = text.to_csv(sep=';', index=False, lineterminator='\r\n')
    (tmp_path/'excel.csv').write_bytes(('\ufeff' + text).encode())
    back = read_repeats(tmp_path/'excel.csv')
    assert back.keep.tolist() == [False, True] and back.cluster.tolist() == [0, 1]
    np.testing.assert_allclose(back[list('xywh')].to_numpy(float), table[list('xywh')].to_numpy(float))
    assert apply_review(dets, ims, back).repeat.sum() == 25

BAD_LISTS = { # change to the written list -> the words the error must contain
    'keep maybe': (lambda t: t.assign(keep=['no', 'maybe']), "line 3, column keep: 'maybe' is not yes or no"),
    'x text': (lambda t: t.assign(x=['0.1', 'left']), "line 3, column x: 'left' is not a number in [0, 1]"),
    'w zero': (lambda t: t.assign(w=[0, .1]), 'line 2, column w'),
    'y above 1': (lambda t: t.assign(y=[.1, 1.5]), 'line 3, column y'),
    'camera blank': (lambda t: t.assign(camera=['cam', '']), 'line 3, column camera'),
    'cluster text': (lambda t: t.assign(cluster=['a', '1']), "line 2, column cluster: 'a' is not whole"),
    'no keep column': (lambda t: t.drop(columns='keep'), 'keep: required column is missing'),
    'no box column': (lambda t: t.drop(columns='h'), 'h: required column is missing'),
}

@pytest.mark.parametrize('name', BAD_LISTS)
def test_malformed_lists_name_file_line_and_column(tmp_path, name):
    dets, ims = two_rocks(tmp_path)
    change, words = BAD_LISTS[name]
    write_csv(change(flag_repeats(dets, ims)[1]), tmp_path/'edited.csv')
    with pytest.raises(InputError, match='edited.csv') as e:
        flag_repeats(dets, ims, review=tmp_path/'edited.csv')
    assert words in str(e.value)

@pytest.mark.parametrize('content, words', [(b'', 'empty file'), (b'\xff\xfe\x00junk', 'not a readable CSV'),
                                            (b'camera,keep\n"cam,no\n', 'not a readable CSV')])
def test_unreadable_lists(tmp_path, content, words):
    (tmp_path/'r.csv').write_bytes(content)
    with pytest.raises(InputError, match=words): read_repeats(tmp_path/'r.csv')

def test_header_only_list_changes_nothing(tmp_path):
    dets, ims = two_rocks(tmp_path)
    (tmp_path/'r.csv').write_text(','.join(TABLE_COLS) + '\n')
    marked, table = flag_repeats(dets, ims, review=tmp_path/'r.csv')
    assert marked.repeat.sum() == 50 and table.keep.tolist() == ['no', 'no']

def test_real_elephants_and_their_sheet(tmp_path):
    "Five copies of one real photo with MegaDetector v5a's boxes: each elephant recurs; one tile per cluster."
    real = REAL/'speciesnet'
    dets = load_megadetector(real/'md_results_mdv5a.json')
    ims = pd.DataFrame({'image_id': dets.image_id.unique(), 'location': 'serengeti'})
    assert len(find_repeats(dets, ims)) == 0 # MegaDetector's 20: five copies are far too few
    found = find_repeats(dets, ims, RepeatConfig(min_occurrences=4))
    table = repeat_table(found)
    assert len(table) == 6 and table.occurrences.tolist() == [4, 4, 5, 5, 4, 5]
    assert set(found.image_id) == {p.name for p in real.glob('african_elephants*.jpg')}
    photos = pd.Series({i: real/i for i in ims.image_id})
    repeat_sheet(table, photos, tmp_path/'sheet.png', tile=120, cols=4)
    im = Image.open(tmp_path/'sheet.png')
    assert im.format == 'PNG' and im.size == (4*122, 2*(90 + 12 + 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sheet.png'] # written atomically, no temp file left
    red = np.asarray(im.convert('RGB'))[:90, :120].astype(int) # the first tile: its box drawn in red
    assert ((red[..., 0] > 200) & (red[..., 1] < 80) & (red[..., 2] < 80)).sum() > 50

@pytest.mark.parametrize('kind', ['moving', 'one rock'])
def test_a_big_camera_takes_seconds(kind):
    "100,000 boxes at one camera: most moving (the most leaders), or one rock (most pairs within a chunk)."
    rng = np.random.default_rng(0)
    if kind == 'moving': b = random_camera(rng, 90_000, 10, 1000, jitter=.0003, rock_min=.05)
    else: b = np.array(ROCK) + rng.normal(0, .0003, (100_000, 4))
    t0 = time.perf_counter(); m = leader_clusters(b); secs = time.perf_counter() - t0
    sizes = m.groupby('cluster').size()
    assert (sizes >= 1000).sum() == (10 if kind == 'moving' else 1)
    assert secs < 60, f'{secs:.1f} s' # about 2 s on one core here

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    from iwildcam_nb.sample import make_sample, SAMPLE_FILES
    d = make_sample(tmp_path_factory.mktemp('sample'), width=96, height=72)
    ims = pd.concat([load_coco(d/SAMPLE_FILES[s]).images for s in ('train', 'test')], ignore_index=True)
    dets = load_megadetector(d/SAMPLE_FILES['megadetector'], images=ims)
    return ims, dets, pd.read_csv(d/SAMPLE_FILES['boxes'])

def test_the_embedded_data_set_keeps_its_animals(sample):
    "No box that MegaDetector's defaults flag on the embedded data covers a true animal."
    ims, dets, truth = sample
    marked, table = flag_repeats(dets, ims)
    flagged = marked[marked.repeat].merge(truth, on='image_id', suffixes=('', '_true'))
    true = flagged[['x_true', 'y_true', 'w_true', 'h_true']].to_numpy(float)
    iou = box_iou(flagged[list('xywh')].to_numpy(float), true)
    assert (iou < .5).all()
    assert list(table.columns) == TABLE_COLS and len(table) == marked.repeat_cluster.nunique()
    assert mark_repeats(dets, find_repeats(dets, ims)).repeat.sum() == marked.repeat.sum()
