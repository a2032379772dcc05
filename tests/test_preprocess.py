"""Preprocess stage: real edge-case JPEGs, resume after an interrupted run, unsafe paths, border boxes, failure lists."""
import os, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile
from iwildcam_nb.core import InputError
from iwildcam_nb.data import load_megadetector
from iwildcam_nb.preprocess import make_crops, resize_images, is_complete, crop_box, crop_id

FAST = dict(n_workers=0, show_progress=False)
ELEPHANTS = ['african_elephants.jpg', 'african_elephants_bw.jpg', 'african_elephants_cmyk.jpg',
             'african_elephants_truncated_file.jpg', 'african_elephants_with_exif_orientation.jpg']

def synth(path, w=320, h=240, box=(0.5, 0.25, 0.25, 0.5), color=(220, 30, 30)):
    "Gradient frame with a coloured rectangle at normalized `box`."
    a = np.zeros((h, w, 3), np.uint8); a[...] = np.linspace(40, 160, w, dtype=np.uint8)[None, :, None]
    x, y, bw, bh = box
    a[max(0, int(y*h)):int((y+bh)*h), max(0, int(x*w)):int((x+bw)*w)] = color
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, quality=95)
    return path

def frames(root, n=6):
    return [synth(Path(root)/f'cam{i%2}'/f'img{i:03d}.jpg') for i in range(n)]

def decodes(p):
    with Image.open(p) as im: im.load()
    return True

def grey(p): return np.asarray(Image.open(p).convert('L').resize((48, 48)), dtype=float)

# --- real edge cases ---------------------------------------------------------------------------

def test_resize_real_variants(speciesnet_dir, tmp_path):
    res = resize_images(speciesnet_dir, tmp_path/'out', size=64, files=ELEPHANTS, **FAST)
    assert res.status.tolist() == ['done']*5
    for f in ELEPHANTS:
        im = Image.open(tmp_path/'out'/f)
        assert im.mode == 'RGB' and im.size == (64, 48), (f, im.mode, im.size) # EXIF variant turned upright too
        assert not im.getexif().get(0x0112) # no orientation tag left to apply twice
    assert res.set_index('path').note.to_dict()['african_elephants_truncated_file.jpg'] == 'truncated'
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    ref = grey(tmp_path/'out'/'african_elephants.jpg')
    for f in ELEPHANTS[1:]: assert np.abs(grey(tmp_path/'out'/f) - ref).mean() < 12, f
    # CMYK: colours too, not only luminance (an inverted CMYK would be far off)
    rgb = lambda f: np.asarray(Image.open(tmp_path/'out'/f), dtype=float)
    assert np.abs(rgb('african_elephants_cmyk.jpg') - rgb('african_elephants.jpg')).mean() < 6

def test_truncated_fail_option(speciesnet_dir, tmp_path):
    res = resize_images(speciesnet_dir, tmp_path/'out', size=64, truncated='fail',
                        files=['african_elephants_truncated_file.jpg', 'ocelot.jpg'], **FAST)
    assert res.status.tolist() == ['failed', 'done']
    assert 'truncated' in res.reason[0]
    assert not (tmp_path/'out'/'african_elephants_truncated_file.jpg').exists()
    fails = pd.read_csv(tmp_path/'out'/'resize_failures.csv')
    assert fails.item.tolist() == ['african_elephants_truncated_file.jpg'] and 'truncated' in fails.reason[0]
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False

def test_crops_real_variants(speciesnet_dir, tmp_path):
    dets = load_megadetector(speciesnet_dir/'md_results_mdv5a.json')
    dets = dets[dets.file.isin(ELEPHANTS)]
    cr = make_crops(dets, speciesnet_dir, tmp_path/'crops', size=32, **FAST)
    assert set(cr.status) == {'done'}
    assert len(cr) == (dets.conf >= 0.3).sum()
    assert cr.note.eq('truncated').sum() == (cr.file == 'african_elephants_truncated_file.jpg').sum() > 0
    top = cr[cr.file == 'african_elephants.jpg'].iloc[0]
    ref = grey(tmp_path/'crops'/top.path)
    def iou(a, b):
        iw = max(0, min(a.x+a.w, b.x+b.w) - max(a.x, b.x)); ih = max(0, min(a.y+a.h, b.y+b.h) - max(a.y, b.y))
        return iw*ih / (a.w*a.h + b.w*b.h - iw*ih)
    # what ignoring the EXIF tag would give: the same normalized box cut from the sideways pixels
    with Image.open(speciesnet_dir/'african_elephants_with_exif_orientation.jpg') as raw:
        wrong = np.asarray(raw.crop(crop_box(top.x, top.y, top.w, top.h, *raw.size)).convert('L').resize((48, 48)), dtype=float)
    control = np.abs(wrong - ref).mean()
    for f in ELEPHANTS[1:]:
        o = max(cr[cr.file == f].itertuples(), key=lambda o: iou(o, top))
        assert iou(o, top) > 0.8
        assert np.abs(grey(tmp_path/'crops'/o.path) - ref).mean() < control/3, f

# --- resume ------------------------------------------------------------------------------------

def test_resize_resume_after_interruption(tmp_path):
    src, dst = tmp_path/'src', tmp_path/'dst'
    frames(src, 8)
    assert set(resize_images(src, dst, size=64, **FAST).status) == {'done'}
    outs = sorted(dst.rglob('*.jpg'))
    assert len(outs) == 8
    old = time.time() - 60
    for p in outs: os.utime(p, (old, old))
    outs[0].unlink(); outs[3].unlink()                       # lost
    for p in outs[5:7]: p.write_bytes(p.read_bytes()[:200])  # cut short after the fact
    stray = [dst/'cam0'/'.img000.jpg.abcd1234.tmp', dst/'cam1'/'.img001.jpg.x_y_z_12.tmp']
    for p in stray: p.write_bytes(b'half'); os.utime(p, (old, old))
    res = resize_images(src, dst, size=64, **FAST)
    redone = {p.relative_to(dst).as_posix() for p in [outs[0], outs[3], outs[5], outs[6]]}
    assert set(res[res.status == 'done'].path) == redone
    assert set(res[res.status == 'skipped'].path) == {p.relative_to(dst).as_posix() for p in outs} - redone
    assert all(is_complete(p) and decodes(p) for p in outs)
    assert not any(p.exists() for p in stray)
    assert all(os.stat(p).st_mtime == old for p in outs if p.relative_to(dst).as_posix() not in redone)

def test_killed_run_loses_nothing(tmp_path):
    src, dst = tmp_path/'src', tmp_path/'dst'
    frames(src, 120)
    code = textwrap.dedent(f"""
        from iwildcam_nb.preprocess import resize_images
        resize_images({str(src)!r}, {str(dst)!r}, size=200, n_workers=1, show_progress=False)
    """)
    p = subprocess.Popen([sys.executable, '-c', code])
    t0 = time.time()
    while not list(dst.rglob('*.jpg')) and time.time() - t0 < 30 and p.poll() is None: time.sleep(0.02)
    time.sleep(0.05)
    p.kill(); p.wait()
    before = {o.relative_to(dst).as_posix() for o in dst.rglob('*.jpg')}
    assert all(is_complete(dst/o) for o in before) # whatever is final is complete
    res = resize_images(src, dst, size=200, **FAST)
    assert set(res[res.status == 'skipped'].path) == before
    assert len(res) == 120 and set(res.status) <= {'done', 'skipped'}
    assert all(decodes(o) for o in dst.rglob('*.jpg')) and len(list(dst.rglob('*.jpg'))) == 120
    assert not [o for o in dst.rglob('*.tmp')]

def test_crops_resume(tmp_path):
    src, out = tmp_path/'src', tmp_path/'crops'
    fs = frames(src, 4)
    dets = pd.DataFrame([dict(image_id=f.stem, det_idx=j, category='animal', conf=0.9 - j/10, x=0.5, y=0.25 - j/10, w=0.25,
                              h=0.5, file=f.relative_to(src).as_posix()) for f in fs for j in range(2)])
    assert set(make_crops(dets, src, out, size=32, **FAST).status) == {'done'}
    paths = sorted(out.glob('*.jpg'))
    assert len(paths) == 8
    old = time.time() - 60
    for p in paths: os.utime(p, (old, old))
    paths[1].unlink(); paths[4].write_bytes(paths[4].read_bytes()[:100])
    (out/'crops.csv').unlink()
    res = make_crops(dets, src, out, size=32, **FAST)
    assert set(res[res.status == 'done'].path) == {paths[1].name, paths[4].name}
    assert all(is_complete(p) and decodes(p) for p in paths)
    assert sorted(pd.read_csv(out/'crops.csv').path) == [p.name for p in paths]

# --- parallel ----------------------------------------------------------------------------------

def test_parallel_same_as_serial(tmp_path):
    frames(tmp_path/'src', 10)
    a = resize_images(tmp_path/'src', tmp_path/'a', size=64, **FAST)
    b = resize_images(tmp_path/'src', tmp_path/'b', size=64, n_workers=2, show_progress=False)
    assert a.equals(b)
    for p in (tmp_path/'a').rglob('*.jpg'): assert p.read_bytes() == (tmp_path/'b'/p.relative_to(tmp_path/'a')).read_bytes()

def test_progress_bar_shows_rate(tmp_path, capsys):
    frames(tmp_path/'src', 3)
    resize_images(tmp_path/'src', tmp_path/'out', size=32, n_workers=0)
    assert 'img/s' in capsys.readouterr().out

# --- unsafe paths ------------------------------------------------------------------------------

@pytest.mark.parametrize('bad', ['../escape.jpg', 'cam0/../../escape.jpg', '/tmp/abs.jpg', '..\\..\\win.jpg'])
def test_unsafe_paths_refused_before_writing(tmp_path, bad):
    src, dst = tmp_path/'src', tmp_path/'dst'
    frames(src, 2)
    with pytest.raises(InputError, match='file_name'):
        resize_images(src, dst, size=32, files=['cam0/img000.jpg', 'cam1/img001.jpg', bad], **FAST)
    assert not dst.exists() or not any(dst.rglob('*'))
    assert not (tmp_path/'escape.jpg').exists()

def test_output_folder_is_source_refused(tmp_path):
    frames(tmp_path, 2)
    with pytest.raises(InputError, match='overwritten'): resize_images(tmp_path, tmp_path, size=32, **FAST)
    with pytest.raises(InputError, match='images folder'): make_crops(pd.DataFrame(columns=['image_id']), tmp_path, tmp_path, **FAST)

def test_hostile_image_ids_stay_inside(tmp_path):
    src, out = tmp_path/'src', tmp_path/'crops'
    synth(src/'a.jpg')
    ids = ['../../evil', '/abs/id', '.hidden', 'x/../../y']
    dets = pd.DataFrame(dict(image_id=ids, det_idx=0, category='animal', conf=0.9, x=0.5, y=0.25, w=0.25, h=0.5, file='a.jpg'))
    cr = make_crops(dets, src, out, size=16, **FAST)
    assert set(cr.status) == {'done'}
    assert sorted(o.name for o in tmp_path.rglob('*.jpg') if o.parent == out) == sorted(f'{crop_id(i, 0)}.jpg' for i in ids)
    assert sorted(o.relative_to(tmp_path).as_posix() for o in tmp_path.rglob('*') if o.is_file() and out not in o.parents) == ['src/a.jpg']

# --- boxes at the border -----------------------------------------------------------------------

def test_border_and_outside_boxes(tmp_path):
    src, out = tmp_path/'src', tmp_path/'crops'
    synth(src/'f.jpg', w=400, h=300, box=(0.8, 0.0, 0.2, 0.3), color=(30, 30, 220)) # blue animal in the top-right corner
    boxes = [(0.8, -0.1, 0.4, 0.4),  # crosses top and right borders -> clipped to the corner
             (1.1, 0.5, 0.2, 0.2),   # wholly outside -> empty
             (0.2, 0.2, 0.0, 0.3),   # no width -> empty
             (0.3, 0.3, -0.1, 0.1),  # negative width -> empty
             (-0.5, -0.5, 0.5, 0.5), # touches the frame at one corner only -> empty
             (0.1, 0.1, 0.2, 0.2)]   # inside
    dets = pd.DataFrame([dict(image_id='f', det_idx=i, category='animal', conf=0.9 - i/100, x=x, y=y, w=w, h=h)
                         for i, (x, y, w, h) in enumerate(boxes)])
    cr = make_crops(dets, src, out, size=32, **FAST)
    assert cr.status.tolist() == ['done', 'empty', 'empty', 'empty', 'empty', 'done']
    assert pd.read_csv(out/'crops.csv').det_idx.tolist() == [0, 5]
    c = Image.open(out/cr.path[0])
    assert c.size == (28, 32) # the 80x90 px left inside the frame, longest side to 32
    assert np.abs(np.asarray(c, dtype=float)[3:-3, 3:-3].mean((0, 1)) - (30, 30, 220)).max() < 15 # the corner animal

def test_failure_lists(tmp_path):
    src = tmp_path/'src'
    frames(src, 2)
    (src/'cam0'/'broken.jpg').write_bytes(b'not a jpeg')
    res = resize_images(src, tmp_path/'out', size=32, files=['cam0/img000.jpg', 'cam0/broken.jpg', 'cam1/missing.jpg'], **FAST)
    assert res.status.tolist() == ['done', 'failed', 'failed']
    fails = pd.read_csv(tmp_path/'out'/'resize_failures.csv')
    assert fails.item.tolist() == ['cam0/broken.jpg', 'cam1/missing.jpg']
    assert 'UnidentifiedImageError' in fails.reason[0] and 'No such file' in fails.reason[1]
    (src/'cam0'/'broken.jpg').unlink()
    synth(src/'cam0'/'broken.jpg') # fixed by the user: the rerun does it and the failure list shrinks
    res = resize_images(src, tmp_path/'out', size=32, files=['cam0/img000.jpg', 'cam0/broken.jpg', 'cam1/missing.jpg'], **FAST)
    assert res.status.tolist() == ['skipped', 'done', 'failed']
    assert pd.read_csv(tmp_path/'out'/'resize_failures.csv').item.tolist() == ['cam1/missing.jpg']
    dets = pd.DataFrame(dict(image_id=['img000', 'gone'], det_idx=0, category='animal', conf=0.9, x=0.1, y=0.1, w=0.5, h=0.5,
                             file=['cam0/img000.jpg', None]))
    cr = make_crops(dets, src, tmp_path/'crops', size=16, **FAST)
    assert cr.status.tolist() == ['done', 'failed']
    fails = pd.read_csv(tmp_path/'crops'/'crops_failures.csv')
    assert fails.item.tolist() == ['gone_000'] and 'gone.jpg' in fails.reason[0]
    assert pd.read_csv(tmp_path/'crops'/'crops.csv').crop_id.tolist() == ['img000_000']

# --- small contracts -----------------------------------------------------------------------------

def test_empty_inputs(tmp_path):
    (tmp_path/'src').mkdir()
    assert resize_images(tmp_path/'src', tmp_path/'dst', **FAST).empty
    assert pd.read_csv(tmp_path/'dst'/'resize_failures.csv').empty
    dets = pd.DataFrame(columns=['image_id', 'det_idx', 'category', 'conf', 'x', 'y', 'w', 'h'])
    assert make_crops(dets, tmp_path/'src', tmp_path/'crops', **FAST).empty
    assert pd.read_csv(tmp_path/'crops'/'crops.csv').columns[:3].tolist() == ['crop_id', 'image_id', 'det_idx']

def test_sizes_and_duplicates(tmp_path):
    synth(tmp_path/'src'/'a.jpg', w=320, h=240)
    res = resize_images(tmp_path/'src', tmp_path/'s', size=60, shortest=True, files=['a.jpg', 'a.jpg'], **FAST)
    assert len(res) == 1 and Image.open(tmp_path/'s'/'a.jpg').size == (80, 60)
    resize_images(tmp_path/'src', tmp_path/'u', size=640, **FAST)
    assert Image.open(tmp_path/'u'/'a.jpg').size == (320, 240) # not enlarged
    resize_images(tmp_path/'src', tmp_path/'v', size=640, upscale=True, **FAST)
    assert Image.open(tmp_path/'v'/'a.jpg').size == (640, 480)
    dets = pd.DataFrame(dict(image_id='a', det_idx=0, category='animal', conf=0.9, x=0.5, y=0.25, w=0.25, h=0.5), index=[0])
    make_crops(dets, tmp_path/'src', tmp_path/'c', size=50, square=True, **FAST)
    assert Image.open(tmp_path/'c'/'a_000.jpg').size == (50, 50)
