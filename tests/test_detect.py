"""The detector stage on the real photos of tests/data/real/speciesnet, with a tiny random Ultralytics model
that the megadetector package loads through its normal path (`detect.make_tiny_detector`).

What this shows: the package's own loading, batch loop, checkpoints and writer run here; its validator accepts
the file and our loader reads it, every photo matched; an interrupted run resumes; the no-network, no-package
and missing-model-code paths each give one line and write nothing. What it does not show: detection quality
(random weights), the YOLOv5 code path that MDv5a needs, or a real download."""
import importlib.util, json, os, shutil, subprocess, sys, tempfile
from contextlib import contextmanager
import pytest
from conftest import REAL, ROOT
from iwildcam_nb.core import InputError
from iwildcam_nb.megadetector import read_megadetector
from iwildcam_nb.detect import (EXTRA, DetectorUnavailable, check_md_file, detect_folder, make_tiny_detector,
                                require_megadetector)

PHOTOS = REAL/'speciesnet' # 14 photos: CMYK, grayscale, EXIF-rotated and truncated copies among them
os.environ.setdefault('YOLO_OFFLINE', '1')

def needs_extra():
    "Skip unless the `detect` extra (megadetector-utils, ultralytics) is installed."
    if importlib.util.find_spec('megadetector') is None: pytest.skip('megadetector is not installed')
    if importlib.util.find_spec('ultralytics') is None: pytest.skip('ultralytics is not installed')

@contextmanager
def no_network(cache):
    "Downloads fail at once (a proxy on a closed local port); MegaDetector's model cache is `cache`."
    keys = ('https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'MDV5A')
    env, old_tmp = {k: os.environ.pop(k, None) for k in keys}, tempfile.tempdir
    os.environ['https_proxy'] = os.environ['HTTPS_PROXY'] = 'http://127.0.0.1:9'
    tempfile.tempdir = str(cache)
    try: yield
    finally:
        tempfile.tempdir = old_tmp
        for k, v in env.items():
            os.environ.pop(k, None)
            if v is not None: os.environ[k] = v

def left_behind(out): return sorted(p.name for p in out.parent.iterdir())

def without_info(path): return {k: v for k, v in json.loads(path.read_text()).items() if k != 'info'}

def count_calls(monkeypatch, stop_after:int|None=None)->list:
    "Record the photos MegaDetector processes; with `stop_after`, a Ctrl-C arrives before the next one."
    rdb = require_megadetector()
    real, seen = getattr(rdb._process_image, '__wrapped__', rdb._process_image), [] # not an earlier spy
    def spy(im_file, *args, **kwargs):
        if stop_after is not None and len(seen) == stop_after: raise KeyboardInterrupt
        seen.append(im_file)
        return real(im_file, *args, **kwargs)
    spy.__wrapped__ = real
    monkeypatch.setattr(rdb, '_process_image', spy)
    return seen

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    needs_extra()
    return make_tiny_detector(tmp_path_factory.mktemp('model')/'tiny_md.pt')

@pytest.fixture(scope='module')
def md_file(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp('det')/'md.json'
    detect_folder(PHOTOS, out, weights=tiny)
    return out

def test_import_is_light():
    code = ("import sys, iwildcam_nb.detect\n"
            "print([m for m in ('megadetector', 'ultralytics', 'torch', 'cv2') if m in sys.modules])")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == '[]'

def test_without_the_package_one_line_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'megadetector.detection.run_detector_batch', None)
    with pytest.raises(DetectorUnavailable) as e: detect_folder(PHOTOS, tmp_path/'md.json')
    assert EXTRA in str(e.value) and '\n' not in str(e.value)
    assert left_behind(tmp_path/'md.json') == []

def test_offline_without_weights_one_line_names_the_option(tmp_path):
    needs_extra()
    out = tmp_path/'out'/'md.json'
    with no_network(tmp_path), pytest.raises(DetectorUnavailable) as e:
        detect_folder(PHOTOS, out, weights='MDV5A')
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith('MDV5A: detector weights: cannot download https://'), msg
    assert msg.endswith('--detector_weights PATH'), msg
    assert not out.parent.exists() # nothing written, not even the checkpoint folder

def test_output_validates_and_loads(md_file):
    r = check_md_file(md_file) # MegaDetector's own validator, plus the 1.5 thresholds
    assert r['errors'] == [] and r['warnings'] == []
    d = json.loads(md_file.read_text())
    assert d['info']['format_version'] == '1.6' and d['info']['detector'] == 'tiny_md.pt'
    thresholds = {'typical_detection_threshold', 'conservative_detection_threshold'}
    assert thresholds <= set(d['info']['detector_metadata'])
    assert d['detection_categories'] == {'1': 'animal', '2': 'person', '3': 'vehicle'}
    files = sorted(p.name for p in PHOTOS.glob('*.jpg'))
    assert sorted(im['file'] for im in d['images']) == files # relative paths, every photo once
    failed = {im['file']: im['failure'] for im in d['images'] if im.get('failure')}
    assert failed == {'african_elephants_cmyk.jpg': 'image access failure'} # MegaDetector refuses CMYK
    assert all(im['detections'] is None for im in d['images'] if im['file'] in failed)
    boxes = [b for im in d['images'] for b in im['detections'] or []]
    assert boxes and all(len(b['bbox']) == 4 and all(0 <= v <= 1 for v in b['bbox']) for b in boxes)
    assert left_behind(md_file) == ['md.json'] # no checkpoint folder, no temporary file

def test_predict_finds_every_photo(md_file):
    from iwildcam_nb.infer import folder_images # the images table `predict` builds for a bare folder
    images = folder_images(PHOTOS, n_workers=1, show_progress=False)
    res = read_megadetector(md_file, images=images, unmatched='drop')
    assert len(res.per_image) == len(images) == 14
    assert res.failures.file.tolist() == ['african_elephants_cmyk.jpg']

def test_interrupted_run_resumes_from_its_checkpoint(tiny, md_file, tmp_path, monkeypatch):
    out = tmp_path/'md.json'
    count_calls(monkeypatch, stop_after=7) # Ctrl-C at the 8th photo; a checkpoint was written after the 5th
    with pytest.raises(KeyboardInterrupt): detect_folder(PHOTOS, out, weights=tiny, checkpoint_every=5)
    assert not out.exists()
    ckpt, = (tmp_path/'.md.json.detect').glob('checkpoint-*.json')
    assert len(json.loads(ckpt.read_text())['checkpoint']) == 5
    seen = count_calls(monkeypatch)
    detect_folder(PHOTOS, out, weights=tiny, checkpoint_every=5)
    assert len(seen) == 14 - 5 # only the photos the checkpoint did not hold
    assert without_info(out) == without_info(md_file) # the same boxes as an uninterrupted run
    assert left_behind(out) == ['md.json']

def test_other_settings_do_not_reuse_a_checkpoint(tiny, tmp_path, monkeypatch):
    out = tmp_path/'md.json'
    count_calls(monkeypatch, stop_after=3)
    with pytest.raises(KeyboardInterrupt): detect_folder(PHOTOS, out, weights=tiny, checkpoint_every=1)
    seen = count_calls(monkeypatch)
    detect_folder(PHOTOS, out, weights=tiny, min_conf=0.2) # other settings: other boxes, so start afresh
    assert len(seen) == 14
    assert left_behind(out) == ['md.json'] # the old checkpoint went too

def test_a_second_run_on_the_same_file_is_refused(tiny, tmp_path):
    hold = ('import sys, time; from iwildcam_nb.core import folder_lock\n'
            'with folder_lock(sys.argv[1], "detect (test)"): print("held", flush=True); time.sleep(60)')
    holder = subprocess.Popen([sys.executable, '-c', hold, str(tmp_path/'.md.json.detect')],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(InputError, match='in use by process'):
            detect_folder(PHOTOS, tmp_path/'md.json', weights=tiny)
    finally: holder.kill(); holder.wait()
    assert not (tmp_path/'md.json').exists()

def test_not_a_model_file(tmp_path):
    needs_extra()
    (tmp_path/'md.pt').write_bytes(b'not a zip archive')
    with pytest.raises(InputError, match='not a PyTorch model file'):
        detect_folder(PHOTOS, tmp_path/'md.json', weights=tmp_path/'md.pt')

def test_no_photos(tmp_path):
    with pytest.raises(InputError, match='no images found'): detect_folder(tmp_path, tmp_path/'md.json')

def test_a_yolov5_model_names_the_code_it_needs(tiny, tmp_path):
    "Last in the file: MegaDetector unloads the Ultralytics modules when it switches to YOLOv5."
    import importlib.util
    if importlib.util.find_spec('yolov5'): pytest.skip('the YOLOv5 code is installed here')
    v5 = make_tiny_detector(tmp_path/'tiny_v5.pt', model_type='yolov5') # labelled as MDv5a is
    with pytest.raises(DetectorUnavailable) as e: detect_folder(PHOTOS, tmp_path/'out'/'md.json', weights=v5)
    assert 'pip install ultralytics-yolov5==0.1.1' in str(e.value) and '\n' not in str(e.value)
    assert not (tmp_path/'out').exists()

def test_pil_reads_as_before_after_the_detector(tiny, tmp_path):
    """Ultralytics swaps `PIL.Image.open` on import for one that pip-installs a HEIF plugin on an unreadable file:
    after a detector run the rest of the package must still see PIL's own error, not an install attempt."""
    from PIL import Image, UnidentifiedImageError
    detect_folder(PHOTOS, tmp_path/'md.json', weights=str(tiny), show_progress=False)
    (tmp_path/'broken.jpg').write_bytes(b'not a photo')
    assert Image.open.__module__ == 'PIL.Image'
    from PIL import ImageFile
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False # MegaDetector sets it on import: a truncated photo must still say so
    with pytest.raises(UnidentifiedImageError): Image.open(tmp_path/'broken.jpg')

def test_detect_command(tiny, tmp_path):
    "`iwildcam-nb detect` as a user runs it: the file validates; offline with a named model, one line and exit 2."
    needs_extra()
    photos = tmp_path/'photos'; photos.mkdir()
    for f in sorted(PHOTOS.glob('*.jpg'))[:3]: shutil.copy(f, photos/f.name)
    cmd = [sys.executable, '-m', 'iwildcam_nb.cli', 'detect', '--images', str(photos), '--quiet']
    env = {**os.environ, 'https_proxy': 'http://127.0.0.1:9', 'HTTPS_PROXY': 'http://127.0.0.1:9',
           'TMPDIR': str(tmp_path)} # no network, an empty model cache
    r = subprocess.run(cmd + ['--out', str(tmp_path/'md.json'), '--detector_weights', str(tiny)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('3 photos: ') and check_md_file(tmp_path/'md.json')['errors'] == []
    r = subprocess.run(cmd + ['--out', str(tmp_path/'x'/'md.json'), '--detector_weights', 'MDV1000-REDWOOD'],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 2 and r.stderr.startswith('error: ') and '--detector_weights PATH' in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path/'x').exists()
