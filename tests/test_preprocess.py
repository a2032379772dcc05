"""Preprocess stage: real and synthetic edge-case images, resume after an interrupted run, option changes, unsafe paths,
border boxes, failure lists, option checks."""
import json, logging, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from conftest import ctrl_c_as_on_a_terminal
from PIL import Image, ImageFile
from iwildcam_nb.core import InputError
from iwildcam_nb.megadetector import load_megadetector
from iwildcam_nb import crops, preprocess
from iwildcam_nb.preprocess import resize_images, is_complete
from iwildcam_nb.crops import make_crops, crop_box, crop_id, parse_crop_id
from iwildcam_nb.photos import display_size

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

def age_record(folder, stage, t):
    "Date the record of options an earlier run left in `folder` back to `t`, as if it had been written then."
    os.utime(Path(folder)/f'.iwildcam_nb_{stage}.json', (t, t))

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
    age_record(dst, 'resize', old - 1) # outputs count only when not older than the record of their options
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
    age_record(out, 'crops', old - 1)
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

PMAP_SCRIPT = """
import time
from iwildcam_nb.photos import pmap
print('started', flush=True)
try:
    for _ in pmap(time.sleep, [0.15]*200, n_workers=2): pass
except KeyboardInterrupt: print('interrupted', flush=True)
"""

def _pmap_stopped(send)->tuple[str, str]:
    "Run `pmap` in a child process of its own session, `send(child)` once it has started; its stdout and stderr."
    p = subprocess.Popen([sys.executable, '-c', PMAP_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, preexec_fn=ctrl_c_as_on_a_terminal)
    assert p.stdout.readline() == 'started\n'
    time.sleep(1.0) # the workers are busy with their first tasks
    send(p)
    out, err = p.communicate(timeout=60) # returns once the workers, which share its stderr, are gone too
    return out, err

@pytest.mark.parametrize('how', ['ctrl-c', 'kill -9'])
def test_stopped_pool_prints_no_worker_traceback(how):
    "Ctrl-C (SIGINT to the whole process group) is handled by the parent alone; after a kill -9 of the parent the workers exit quietly."
    send = (lambda p: os.killpg(p.pid, signal.SIGINT)) if how == 'ctrl-c' else (lambda p: os.kill(p.pid, signal.SIGKILL))
    out, err = _pmap_stopped(send)
    if how == 'ctrl-c': assert 'interrupted' in out
    assert 'Traceback' not in err and 'Error' not in err, err

def test_progress_bar_shows_rate(tmp_path, capsys):
    frames(tmp_path/'src', 3)
    resize_images(tmp_path/'src', tmp_path/'out', size=32, n_workers=0, show_progress=True)
    out = capsys.readouterr().out
    assert 'img/s' in out and out.endswith('\n') # the next line is not glued to the bar

def test_progress_bar_only_on_a_terminal(tmp_path, capsys):
    frames(tmp_path/'src', 3)
    resize_images(tmp_path/'src', tmp_path/'out', size=32, n_workers=0) # default: auto; captured stdout is no TTY
    make_crops(pd.DataFrame(dict(image_id=['cam0/img000'], det_idx=0, category='animal', conf=0.9, x=0.1, y=0.1, w=0.5,
                                 h=0.5)), tmp_path/'src', tmp_path/'c', size=16, n_workers=0)
    assert capsys.readouterr().out == ''

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
    assert cr.attrs['failures'] == tmp_path/'crops'/'crops_failures.csv' and res.attrs['failures'] == tmp_path/'out'/'resize_failures.csv'
    assert pd.read_csv(cr.attrs['failures']).columns.tolist() == ['item', 'stage', 'reason']

def test_crop_plan_same_as_groupby():
    "The vectorized plan: one task per frame in order of first appearance, its crops in table order (as groupby did)."
    rng = np.random.default_rng(1)
    n = 300
    dets = pd.DataFrame(dict(image_id=[f'i{k}' for k in rng.integers(0, 60, n)], det_idx=np.arange(n), category='animal',
                             conf=rng.uniform(0.2, 1, n), x=rng.uniform(-0.2, 1, n), y=0.1, w=0.2, h=0.2))
    dets['file'] = [None if k % 7 == 0 else f'cam{k % 3}\\{i}.jpg' for k, i in enumerate(dets.image_id)]
    sel = crops.select_crops(dets, 0.3)
    d = sel[sel.status == 'todo']
    ref = [(Path('/src')/f, [(o.crop_id, Path('/out')/o.path, o.x, o.y, o.w, o.h) for o in g.itertuples()])
           for f, g in d.groupby('file', sort=False)]
    assert crops._crop_plan(sel, '/src', '/out') == ref and len(ref) > 20
    assert crops._crop_plan(sel.iloc[:0], '/src', '/out') == []

def test_symlinked_folder_out_of_dst_refused(tmp_path):
    src, dst = tmp_path/'src', tmp_path/'dst'
    frames(src, 2)
    (tmp_path/'elsewhere').mkdir(); dst.mkdir(); os.symlink(tmp_path/'elsewhere', dst/'cam0')
    with pytest.raises(InputError, match='climbs out'): resize_images(src, dst, size=32, files=['cam1/img001.jpg', 'cam0/img000.jpg'], **FAST)
    assert not any((tmp_path/'elsewhere').iterdir())

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

# --- options that shape the outputs: a rerun with other options redoes them ---------------------

def sizes(root): return {p.relative_to(root).as_posix(): Image.open(p).size for p in Path(root).rglob('*.jpg')}

def test_resize_rerun_with_other_options_redoes(tmp_path, caplog):
    src, dst = tmp_path/'src', tmp_path/'dst'
    frames(src, 3) # 320x240
    resize_images(src, dst, size=100, shortest=True, **FAST)
    assert set(sizes(dst).values()) == {(133, 100)}
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'):
        res = resize_images(src, dst, size=50, shortest=True, **FAST)
    assert set(res.status) == {'done'} and set(sizes(dst).values()) == {(67, 50)}
    assert 'options changed' in caplog.text and '100 -> 50' in caplog.text
    assert json.loads((dst/'.iwildcam_nb_resize.json').read_text())['options']['size'] == 50
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'):
        assert set(resize_images(src, dst, size=50, shortest=True, **FAST).status) == {'skipped'} # same options
    assert 'options changed' not in caplog.text
    before = {p: p.read_bytes() for p in dst.rglob('*.jpg')}
    assert set(resize_images(src, dst, size=50, shortest=True, quality=60, **FAST).status) == {'done'}
    assert all(p.read_bytes() != b for p, b in before.items()) # quality shapes the files too

def test_option_change_then_subset_or_kill_leaves_nothing_stale(tmp_path):
    src, dst = tmp_path/'src', tmp_path/'dst'
    fs = [f.relative_to(src).as_posix() for f in frames(src, 4)]
    resize_images(src, dst, size=100, **FAST)
    # a run with new options that stops after two images (a --coco subset, or a kill): the other two are still old
    assert set(resize_images(src, dst, size=60, files=fs[:2], **FAST).status) == {'done'}
    res = resize_images(src, dst, size=60, **FAST)
    assert res.set_index('path').status.to_dict() == {fs[0]: 'skipped', fs[1]: 'skipped', fs[2]: 'done', fs[3]: 'done'}
    assert set(sizes(dst).values()) == {(60, 45)}

def test_crops_rerun_with_other_options_redoes(tmp_path, caplog):
    src, out = tmp_path/'src', tmp_path/'crops'
    synth(src/'a.jpg')
    dets = pd.DataFrame(dict(image_id='a', det_idx=[0, 1], category='animal', conf=0.9, x=[0.5, 0.1], y=[0.25, 0.1],
                             w=[0.25, 0.2], h=[0.5, 0.3]))
    def run(**kw): return make_crops(dets, src, out, **{**dict(size=32), **kw}, **FAST)
    assert set(run().status) == {'done'}
    first = sizes(out)
    for kw in [dict(pad=0.3), dict(pad=0.3, square=True), dict(pad=0.3, square=True, size=24), dict(pad=0.3, square=True, size=24, quality=50)]:
        old = {p: p.read_bytes() for p in out.glob('*.jpg')}
        with caplog.at_level(logging.WARNING, logger='iwildcam_nb'): res = run(**kw)
        assert set(res.status) == {'done'}, kw
        assert all(p.read_bytes() != b for p, b in old.items()), kw
        assert 'options changed' in caplog.text; caplog.clear()
        assert set(run(**kw).status) == {'skipped'}, kw
    assert set(sizes(out).values()) == {(24, 24)} != set(first.values())

# --- the output folder is checked before any work -------------------------------------------------

def test_unwritable_output_refused_before_decoding(tmp_path, monkeypatch):
    frames(tmp_path/'src', 3)
    calls = []
    monkeypatch.setattr(preprocess, 'open_rgb', lambda *a, **k: calls.append(a) or 1/0) # the name preprocess looks up (from photos)
    monkeypatch.setattr(crops, 'open_rgb', lambda *a, **k: calls.append(a) or 1/0) # and crops
    (tmp_path/'afile').write_text('x')
    with pytest.raises(InputError, match='cannot write here') as e:
        resize_images(tmp_path/'src', tmp_path/'afile'/'out', size=32, **FAST) # a file where a folder should be
    assert e.value.path == str(tmp_path/'afile'/'out') and e.value.field == '-'
    dets = pd.DataFrame(dict(image_id=['cam0/img000'], det_idx=0, category='animal', conf=0.9, x=0.1, y=0.1, w=0.5, h=0.5))
    with pytest.raises(InputError, match='cannot write here'): make_crops(dets, tmp_path/'src', tmp_path/'afile'/'c', **FAST)
    assert calls == []

READ_ONLY_SCRIPT = """
import os, sys
from iwildcam_nb.core import InputError
from iwildcam_nb.preprocess import resize_images
if os.geteuid() == 0: os.setgid(65534); os.setuid(65534) # root gives itself up for `nobody`, to whom permissions apply
try: resize_images(sys.argv[1], sys.argv[2], n_workers=0, show_progress=False)
except InputError as e: sys.exit(f'InputError: {e}')
"""

@pytest.mark.skipif(not hasattr(os, 'geteuid'), reason='no users and permissions to test')
def test_read_only_output_refused():
    "A folder the user may not write into: one InputError naming it and the reason (as `nobody` when the tests run as root)."
    import tempfile
    with tempfile.TemporaryDirectory() as d: # not under pytest's own folder, which only its owner may enter
        d = Path(d)
        if os.geteuid() == 0 and not all(q.stat().st_mode & 0o001 for q in d.parents): # TMPDIR in a private folder
            pytest.skip(f'{d.parent} is not open to other users, so `nobody` cannot reach a folder there')
        frames(d/'src', 2); (d/'ro').mkdir()
        for p in [d, *d.rglob('*')]: os.chmod(p, 0o755 if p.is_dir() else 0o644) # readable by all, whatever the umask
        os.chmod(d/'ro', 0o555)
        r = subprocess.run([sys.executable, '-c', READ_ONLY_SCRIPT, str(d/'src'), str(d/'ro')], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 1 and r.stderr.startswith(f'InputError: {d/"ro"}:'), r.stderr
        assert 'cannot write here' in r.stderr and 'ermission' in r.stderr, r.stderr
        assert list((d/'ro').iterdir()) == []

# --- option values are checked before any work -----------------------------------------------------

@pytest.mark.parametrize('kw, name', [(dict(size=0), 'size'), (dict(size=-5), 'size'), (dict(size=2.5), 'size'),
                                      (dict(quality=0), 'quality'), (dict(quality=101), 'quality'),
                                      (dict(truncated='skip'), 'truncated'), (dict(resample='cubic'), 'resample')])
def test_bad_resize_options_refused(tmp_path, kw, name):
    frames(tmp_path/'src', 2)
    with pytest.raises(ValueError, match=f'^{name} must be'): resize_images(tmp_path/'src', tmp_path/'out', **kw, **FAST)
    assert not (tmp_path/'out').exists()

@pytest.mark.parametrize('kw, name', [(dict(size=0), 'size'), (dict(pad=-0.1), 'pad'), (dict(pad=float('nan')), 'pad'),
                                      (dict(categories=('animal', 'cat')), 'categories'), (dict(categories=()), 'categories'),
                                      (dict(conf=30), 'conf'), (dict(quality=0), 'quality')])
def test_bad_crop_options_refused(tmp_path, kw, name):
    synth(tmp_path/'src'/'a.jpg')
    dets = pd.DataFrame(dict(image_id='a', det_idx=0, category='animal', conf=0.9, x=0.5, y=0.25, w=0.25, h=0.5), index=[0])
    with pytest.raises(ValueError, match=f'^{name} must be'): make_crops(dets, tmp_path/'src', tmp_path/'c', **kw, **FAST)
    assert not (tmp_path/'c').exists()

def test_categories_any_case(tmp_path):
    synth(tmp_path/'src'/'a.jpg')
    dets = pd.DataFrame(dict(image_id='a', det_idx=[0, 1], category=['animal', 'Person'], conf=0.9, x=0.5, y=0.25, w=0.25, h=0.5))
    cr = make_crops(dets, tmp_path/'src', tmp_path/'c', categories=('Animal', ' PERSON'), size=16, **FAST)
    assert cr.det_idx.tolist() == [0, 1] and set(cr.status) == {'done'}
    assert make_crops(dets, tmp_path/'src', tmp_path/'c', categories='animal,person', size=16, **FAST).det_idx.tolist() == [0, 1]

# --- MegaDetector files written on Windows ---------------------------------------------------------

def test_crops_file_with_backslashes(tmp_path):
    src = tmp_path/'src'
    synth(src/'nested'/'deep er'/'my ocelot.jpg')
    md = tmp_path/'md.json'
    md.write_text(json.dumps({'images': [{'file': 'nested\\deep er\\my ocelot.jpg', 'detections': [
        {'category': '1', 'conf': 0.9, 'bbox': [0.5, 0.25, 0.25, 0.5]}]}], 'detection_categories': {'1': 'animal'},
        'info': {'format_version': '1.4'}}))
    cr = make_crops(load_megadetector(md), src, tmp_path/'c', size=32, **FAST)
    assert cr.status.tolist() == ['done'], cr.reason.tolist()
    assert pd.read_csv(tmp_path/'c'/'crops.csv').file.tolist() == ['nested/deep er/my ocelot.jpg']

# --- square crops ---------------------------------------------------------------------------------

def test_square_crops_are_exactly_square(tmp_path):
    src = tmp_path/'src'
    synth(src/'f.jpg', w=333, h=251)
    rng = np.random.default_rng(0)
    boxes = [(rng.uniform(0, 0.7), rng.uniform(0, 0.7), rng.uniform(0.03, 0.3), rng.uniform(0.03, 0.3)) for _ in range(40)]
    dets = pd.DataFrame([dict(image_id='f', det_idx=i, category='animal', conf=0.9, x=x, y=y, w=w, h=h) for i, (x, y, w, h) in enumerate(boxes)])
    for size in (32, 57):
        cr = make_crops(dets, src, tmp_path/f'c{size}', size=size, pad=0.2, square=True, **FAST)
        assert set(cr.status) == {'done'}
        assert {Image.open(tmp_path/f'c{size}'/p).size for p in cr.path} == {(size, size)}

def test_square_crops_real(speciesnet_dir, tmp_path):
    cr = make_crops(load_megadetector(speciesnet_dir/'md_results_mdv5a.json'), speciesnet_dir, tmp_path/'c', size=128, pad=0.2,
                    square=True, **FAST)
    assert set(cr.status) == {'done'} and len(cr) > 10
    assert {Image.open(tmp_path/'c'/p).size for p in cr.path} == {(128, 128)}

# --- PNG and 16-bit frames --------------------------------------------------------------------------

def test_png_decoded_once(tmp_path, monkeypatch):
    from PIL import PngImagePlugin
    synth(tmp_path/'src'/'a.png')
    ex = Image.Exif(); ex[0x0112] = 6
    Image.open(tmp_path/'src'/'a.png').save(tmp_path/'src'/'rot.png', exif=ex)
    n = []
    orig = PngImagePlugin.PngImageFile.load_end
    monkeypatch.setattr(PngImagePlugin.PngImageFile, 'load_end', lambda self: n.append(1) or orig(self))
    assert display_size(tmp_path/'src'/'rot.png') == (240, 320) and n == [] # the orientation comes from the header
    res = resize_images(tmp_path/'src', tmp_path/'out', size=64, **FAST)
    assert set(res.status) == {'done'} and len(n) == 2 # one decode per PNG
    assert Image.open(tmp_path/'out'/'a.png').size == (64, 48) and Image.open(tmp_path/'out'/'rot.png').size == (48, 64)

def test_truncated_png(tmp_path):
    synth(tmp_path/'a.png', w=400, h=300)
    b = (tmp_path/'a.png').read_bytes(); (tmp_path/'src').mkdir(); (tmp_path/'src'/'cut.png').write_bytes(b[:len(b)//2])
    res = resize_images(tmp_path/'src', tmp_path/'keep', size=64, **FAST)
    assert res.status.tolist() == ['done'] and res.note.tolist() == ['truncated']
    assert Image.open(tmp_path/'keep'/'cut.png').size == (64, 48)
    assert resize_images(tmp_path/'src', tmp_path/'fail', size=64, truncated='fail', **FAST).status.tolist() == ['failed']

@pytest.mark.parametrize('ext', ['png', 'tif'])
def test_16bit_grayscale(tmp_path, ext):
    a = np.tile(np.linspace(0, 65535, 256), (128, 1)).astype(np.uint16) # dark to white, left to right
    Image.fromarray(a).save(tmp_path/f'g.{ext}')
    assert Image.open(tmp_path/f'g.{ext}').mode.startswith('I;16')
    resize_images(tmp_path, tmp_path/'out', size=64, files=[f'g.{ext}'], **FAST)
    out = np.asarray(Image.open(tmp_path/'out'/f'g.{ext}'), dtype=float)
    assert out.shape == (32, 64, 3)
    assert abs(out.mean() - 127.5) < 6 and out[:, :4].mean() < 12 and out[:, -4:].mean() > 243 # not clipped to white

# --- truncated files are recorded on disk ------------------------------------------------------------

def truncated_jpeg(path, im=None):
    "A JPEG of `im` (default: a `synth` frame) cut after half its bytes."
    im.save(path, quality=95) if im else synth(path)
    b = Path(path).read_bytes(); Path(path).write_bytes(b[:len(b)//2])
    return path

def test_truncated_recorded_on_disk(tmp_path):
    src = tmp_path/'src'
    frames(src, 2); truncated_jpeg(src/'cam0'/'cut.jpg')
    res = resize_images(src, tmp_path/'out', size=64, **FAST)
    assert '1 truncated' in res.attrs['summary']
    t = pd.read_csv(tmp_path/'out'/'resize.csv')
    assert t.columns[:5].tolist() == ['path', 'status', 'width', 'height', 'note']
    assert t.set_index('path').note.fillna('').to_dict() == {'cam0/cut.jpg': 'truncated', 'cam0/img000.jpg': '', 'cam1/img001.jpg': ''}
    res = resize_images(src, tmp_path/'out', size=64, **FAST) # a rerun skips them all and keeps what was recorded
    assert set(res.status) == {'skipped'} and '1 truncated' in res.attrs['summary']
    t = pd.read_csv(tmp_path/'out'/'resize.csv').set_index('path')
    assert t.note['cam0/cut.jpg'] == 'truncated' and t.width.tolist() == [64]*3
    dets = pd.DataFrame(dict(image_id=['cut', 'img000'], det_idx=0, category='animal', conf=0.9, x=0.1, y=0.1, w=0.3, h=0.3,
                             file=['cam0/cut.jpg', 'cam0/img000.jpg']))
    for _ in range(2): # done, then skipped: the note stays in crops.csv
        cr = make_crops(dets, src, tmp_path/'c', size=16, **FAST)
        assert '1 truncated' in cr.attrs['summary']
        assert pd.read_csv(tmp_path/'c'/'crops.csv').note.fillna('').tolist() == ['truncated', '']

# --- output folders of earlier runs inside the source ------------------------------------------------

def test_earlier_output_inside_source_left_out(tmp_path, caplog):
    src = tmp_path/'src'
    frames(src, 3)
    assert len(resize_images(src, src/'out', size=32, **FAST)) == 3
    with caplog.at_level(logging.INFO, logger='iwildcam_nb'):
        res = resize_images(src, src/'out2', size=32, **FAST)
    assert len(res) == 3 and not any(p.startswith('out') for p in res.path)
    assert 'out' in caplog.text and 'earlier run' in caplog.text
    synth(src/'out2'/'extra'/'new.jpg') # a folder nested deeper inside an output folder is left out too
    assert len(resize_images(src, tmp_path/'out3', size=32, **FAST)) == 3

# --- synthetic edge cases (made here, pixel by pixel) -----------------------------------------------

def display_frame(w=80, h=60):
    "An asymmetric frame: gradient, red block near the top-left, blue block along the bottom."
    a = np.zeros((h, w, 3), np.uint8); a[...] = np.linspace(40, 160, w, dtype=np.uint8)[None, :, None]
    a[h//10:h//10 + h//4, w//10:w//10 + w//3] = (220, 30, 30); a[-h//6:, w//2:] = (30, 30, 220)
    return Image.fromarray(a)

# EXIF orientation -> the transpose that turns the *displayed* image into the stored pixels (its inverse is applied on display)
STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}

def test_synthetic_exif_orientations(tmp_path):
    disp = display_frame(160, 120)
    (tmp_path/'src').mkdir()
    for o, t in STORED.items():
        ex = Image.Exif(); ex[0x0112] = o
        (disp.transpose(t) if t is not None else disp).save(tmp_path/'src'/f'o{o}.jpg', quality=95, exif=ex)
    res = resize_images(tmp_path/'src', tmp_path/'out', size=80, **FAST)
    assert set(res.status) == {'done'}
    ref = np.asarray(disp.resize((80, 60)), dtype=float)
    for o in STORED:
        im = Image.open(tmp_path/'out'/f'o{o}.jpg')
        assert im.size == (80, 60) and not im.getexif().get(0x0112), o
        assert np.abs(np.asarray(im, dtype=float) - ref).mean() < 8, o
    dets = pd.DataFrame(dict(image_id=[f'o{o}' for o in STORED], det_idx=0, category='animal', conf=0.9, x=0.1, y=0.1, w=1/3, h=0.25))
    make_crops(dets, tmp_path/'src', tmp_path/'c', size=32, **FAST)
    for o in STORED: # the box, given as displayed, cuts the red block whatever way the pixels are stored
        c = np.asarray(Image.open(tmp_path/'c'/f'o{o}_000.jpg'), dtype=float)
        assert np.abs(c[3:-3, 3:-3].mean((0, 1)) - (220, 30, 30)).max() < 20, o

def test_synthetic_cmyk_grey_truncated(tmp_path):
    src, disp = tmp_path/'src', display_frame(160, 120)
    src.mkdir()
    disp.save(src/'rgb.jpg', quality=95); disp.convert('CMYK').save(src/'cmyk.jpg', quality=95)
    disp.convert('L').save(src/'grey.jpg', quality=95); truncated_jpeg(src/'cut.jpg', disp)
    assert Image.open(src/'cmyk.jpg').mode == 'CMYK' and Image.open(src/'grey.jpg').mode == 'L'
    res = resize_images(src, tmp_path/'out', size=80, **FAST).set_index('path')
    assert set(res.status) == {'done'} and res.note.to_dict() == {'cmyk.jpg': '', 'cut.jpg': 'truncated', 'grey.jpg': '', 'rgb.jpg': ''}
    rgb = lambda f: np.asarray(Image.open(tmp_path/'out'/f), dtype=float)
    assert all(Image.open(tmp_path/'out'/f).mode == 'RGB' for f in res.index)
    assert np.abs(rgb('cmyk.jpg') - rgb('rgb.jpg')).mean() < 4 # colours kept, not inverted
    assert np.abs(rgb('cmyk.jpg')[8:19, 10:32].mean((0, 1)) - (220, 30, 30)).max() < 15
    g = rgb('grey.jpg')
    assert np.abs(g[..., 0] - g[..., 2]).max() < 3 and np.abs(g.mean(2) - rgb('rgb.jpg').mean(2)).mean() < 25
    assert np.abs(rgb('cut.jpg')[:12] - rgb('rgb.jpg')[:12]).mean() < 4 # decoded as far as the data goes
    assert np.abs(rgb('cut.jpg')[-4:] - 128).max() < 4 # and grey after
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    res = resize_images(src, tmp_path/'fail', size=80, truncated='fail', **FAST).set_index('path')
    assert res.status.to_dict() == {'cmyk.jpg': 'done', 'cut.jpg': 'failed', 'grey.jpg': 'done', 'rgb.jpg': 'done'}
    assert 'truncated' in res.reason['cut.jpg'] and not (tmp_path/'fail'/'cut.jpg').exists()

# --- crop file names --------------------------------------------------------------------------------

def test_crop_ids_readable_and_reversible():
    assert crop_id('cam1/IMG_0001.JPG', 0) == 'cam1%2FIMG_0001.JPG_000'
    ids = ['cam1/IMG_0001.JPG', 'cam1%2FIMG_0001.JPG', '.hidden', '..', '../x', 'a b', 'a%20b', 'élan', 'x.', 'C:\\d\\e.jpg', 'CON']
    cids = [crop_id(i, 3) for i in ids]
    assert len(set(cids)) == len(ids)
    for i, c in zip(ids, cids):
        assert parse_crop_id(c) == (i, 3)
        assert '/' not in c and '\\' not in c and not c.startswith('.') and set(c) <= set('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-%~')

# --- the benchmark checks what it times ----------------------------------------------------------------

def test_benchmark_verifies_and_reports_psnr(tmp_path):
    for i in range(3): synth(tmp_path/f'f{i}.jpg', w=640, h=480)
    r = subprocess.run([sys.executable, str(Path(__file__).parent.parent/'benchmarks'/'bench_preprocess.py'), str(tmp_path),
                        '--size', '64', '--repeat', '1'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'PSNR' in r.stdout and 'verified' in r.stdout, r.stdout
