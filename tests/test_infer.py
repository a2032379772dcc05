"""`iwildcam-nb predict` on new photos, as a user runs it: killed and resumed, real photos in odd formats, bad input."""
import importlib.util, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd
import pytest
from conftest import ctrl_c_as_on_a_terminal

SAMPLE_MD = 'metadata/iwildcam2021_megadetector_results.json'
SAMPLE_TEST = 'metadata/iwildcam2021_test_information.json'

def cli(*args, env:dict|None=None):
    "The command line as a subprocess (`python -m iwildcam_nb.cli`), not yet waited for."
    return subprocess.Popen([sys.executable, '-m', 'iwildcam_nb.cli', *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})},
                            preexec_fn=ctrl_c_as_on_a_terminal)

def finish(p, timeout=600):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err

def make_world(root:Path, seqs_per_location:int=6):
    "The embedded data set (small) in `root` and two tiny models trained on it: random weights, one epoch."
    from iwildcam_nb.sample import make_sample, read_sample
    from iwildcam_nb.megadetector import load_megadetector
    from iwildcam_nb.preprocess import resize_images
    from iwildcam_nb.crops import make_crops
    from iwildcam_nb.models import QUICK, train
    data = make_sample(root/'data', seed=1, seqs_per_location=seqs_per_location)
    s = read_sample(data)
    resize_images(data/'train', root/'resized', size=64, n_workers=0, show_progress=False)
    make_crops(load_megadetector(data/SAMPLE_MD), data/'train', root/'crops', size=64, n_workers=0, show_progress=False)
    for kind, folder in (('full', root/'resized'), ('crop', root/'crops')):
        train(kind, s['images'], s['labels'], s['categories'], folder, root/'models', QUICK[kind], show_progress=False,
              arch='tiny', pretrained=False, size=32, frozen_epochs=0, epochs=1)
    return root, data

_SESSION = {} # made once per pytest session, shared with test_distributed and test_cluster

def shared_world(tmp_path_factory):
    "`make_world`, made once per session for every module that predicts on it."
    if 'world' not in _SESSION: _SESSION['world'] = make_world(tmp_path_factory.mktemp('infer'))
    return _SESSION['world']

@pytest.fixture(scope='module')
def world(tmp_path_factory): return shared_world(tmp_path_factory)

def predict_args(world, out, *extra):
    root, data = world
    return ('predict', '--images', data/'test', '--detections', data/SAMPLE_MD, '--models', root/'models', '--out', out,
            '--annotations', data/SAMPLE_TEST, '--quiet', *extra)

OUTPUT_FILES = ('sequences.csv', 'submission_2021.csv', 'submission_2020.csv', 'failures.csv',
                'preds/image_preds.csv', 'preds/seq_preds.csv', 'preds/full_probs.csv', 'preds/crop_probs.csv')

def md_without_times(path):
    "The MegaDetector-format output without its `info` block (which records when it was written)."
    d = json.loads(Path(path).read_text()); d.pop('info', None)
    return d

def same_outputs(a, b):
    for f in OUTPUT_FILES: assert (a/f).read_bytes() == (b/f).read_bytes(), f
    assert md_without_times(a/'megadetector_classified.json') == md_without_times(b/'megadetector_classified.json')
    assert json.loads((a/'speciesnet_predictions.json').read_text()) == json.loads((b/'speciesnet_predictions.json').read_text())

def kill_after(p, ck_dir, n_parts, sig):
    "Send `sig` to `p` once `n_parts` checkpoints exist; return how many existed when it stopped."
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < 300:
        if len(list(Path(ck_dir).glob('part_*.npz'))) >= n_parts: p.send_signal(sig); break
        time.sleep(0.05)
    p.wait(timeout=120)
    return len(list(Path(ck_dir).glob('part_*.npz')))

def reference_run(world):
    "One process's `predict --checkpoint_every 4` into ROOT/whole, made once per session: what other runs must equal."
    if 'whole' not in _SESSION:
        out = world[0]/'whole'
        rc, stdout, err = finish(cli(*predict_args(world, out, '--checkpoint_every', 4)))
        assert rc == 0, err
        _SESSION['whole'] = out, stdout
    return _SESSION['whole']

@pytest.fixture(scope='module')
def uninterrupted(world): return reference_run(world)

def test_predict_writes_the_field_outputs(world, uninterrupted):
    from iwildcam_nb.outputs import check_md_format
    out, stdout = uninterrupted
    for f in OUTPUT_FILES + ('megadetector_classified.json', 'speciesnet_predictions.json'): assert (out/f).exists(), f
    check_md_format(json.loads((out/'megadetector_classified.json').read_text()))
    test = json.loads((world[1]/SAMPLE_TEST).read_text())
    seqs = pd.read_csv(out/'sequences.csv')
    assert set(seqs.seq_id) == {im['seq_id'] for im in test['images']}
    assert 'photos in' in stdout and 'sequences.csv' in stdout

@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_the_same_outputs(world, uninterrupted, sig):
    out = world[0]/f'killed_{int(sig)}'
    ck = out/'checkpoints'
    p = cli(*predict_args(world, out, '--checkpoint_every', 4))
    n_left = kill_after(p, ck, 3, sig)
    n_all = len(list((uninterrupted[0]/'checkpoints').glob('part_*.npz')))
    assert p.returncode != 0 and 3 <= n_left < n_all, (p.returncode, n_left, n_all)
    if sig == signal.SIGINT: assert p.returncode == 130 and 'run the same command again' in p.stderr.read()
    assert not (out/'sequences.csv').exists()
    rc, _, err = finish(cli(*predict_args(world, out, '--checkpoint_every', 4)))
    assert rc == 0, err
    assert 'resuming' in err # the finished checkpoints were read, not redone
    same_outputs(uninterrupted[0], out)

def test_changed_models_discard_checkpoints(world, uninterrupted, tmp_path):
    out = tmp_path/'o'
    shutil.copytree(uninterrupted[0]/'checkpoints', out/'checkpoints')
    manifest = json.loads((out/'checkpoints'/'manifest.json').read_text()); manifest['models']['crop'] = 'another model'
    (out/'checkpoints'/'manifest.json').write_text(json.dumps(manifest))
    rc, _, err = finish(cli(*predict_args(world, out, '--checkpoint_every', 4)))
    assert rc == 0 and 'discarded' in err, err
    same_outputs(uninterrupted[0], out)

def test_real_photos_in_odd_formats(world, speciesnet_dir, tmp_path):
    "The SpeciesNet test photos (grayscale, CMYK, truncated, EXIF-rotated) with their real MegaDetector v5a file, no COCO file."
    from iwildcam_nb.outputs import check_md_format
    out = tmp_path/'real'
    rc, stdout, err = finish(cli('predict', '--images', speciesnet_dir, '--detections', speciesnet_dir/'md_results_mdv5a.json',
                                 '--models', world[0]/'models', '--out', out, '--quiet', '--workers', 1))
    assert rc == 0, err
    photos = sorted(p.name for p in speciesnet_dir.glob('*.jpg'))
    md = check_md_format(json.loads((out/'megadetector_classified.json').read_text()))
    assert sorted(im['file'] for im in md['images']) == photos
    preds, fails = pd.read_csv(out/'preds'/'image_preds.csv'), pd.read_csv(out/'failures.csv')
    assert set(preds.image_id) | set(fails.image_id) == set(photos) # every photo answered or its failure recorded
    for odd in ('african_elephants_cmyk.jpg', 'african_elephants_bw.jpg', 'african_elephants_with_exif_orientation.jpg',
                'african_elephants_truncated_file.jpg'):
        assert odd in set(preds.image_id), odd
    real = json.loads((speciesnet_dir/'md_results_mdv5a.json').read_text())
    n_boxes = {im['file']: len(im.get('detections') or []) for im in real['images']}
    assert {im['file']: len(im['detections'] or []) for im in md['images'] if 'failure' not in im} == \
           {f: n for f, n in n_boxes.items() if f not in set(fails.image_id[fails.stage != 'detector'])}
    sn = json.loads((out/'speciesnet_predictions.json').read_text())
    assert len(sn['predictions']) == len(photos)

def test_broken_photo_is_recorded_not_fatal(world, tmp_path):
    root, data = world
    photos = tmp_path/'photos'; shutil.copytree(data/'test', photos)
    victim = sorted(photos.glob('*.jpg'))[0]
    victim.write_bytes(b'not a jpeg at all')
    rc, _, err = finish(cli('predict', '--images', photos, '--detections', data/SAMPLE_MD, '--models', root/'models',
                            '--out', tmp_path/'o', '--annotations', data/SAMPLE_TEST, '--quiet'))
    assert rc == 0, err
    fails = pd.read_csv(tmp_path/'o'/'failures.csv')
    test = json.loads((data/SAMPLE_TEST).read_text())
    vid = next(im['id'] for im in test['images'] if im['file_name'] == victim.name)
    assert vid in set(fails.image_id) and (fails[fails.image_id == vid].stage == 'read').any()

@pytest.mark.parametrize('what', ['models', 'detections'])
def test_bad_input_is_one_clear_line(world, tmp_path, what):
    root, data = world
    args = dict(images=data/'test', detections=data/SAMPLE_MD, models=root/'models')
    if what == 'models': args['models'] = tmp_path # no models there
    else: (tmp_path/'md.json').write_text('{"images": [ {"file": '); args['detections'] = tmp_path/'md.json'
    rc, _, err = finish(cli('predict', *[x for k, v in args.items() for x in (f'--{k}', v)], '--out', tmp_path/'o', '--quiet'))
    assert rc == 2 and err.splitlines()[-1].startswith('error: ') and 'Traceback' not in err, err
    assert ('full.safetensors' if what == 'models' else 'md.json') in err

def test_detections_of_other_photos_are_refused(world, tmp_path):
    "Without the COCO file the photos are keyed by path, and the sample's MegaDetector file (keyed by id) matches none of them."
    root, data = world
    rc, _, err = finish(cli('predict', '--images', data/'test', '--detections', data/SAMPLE_MD, '--models', root/'models',
                            '--out', tmp_path/'o', '--quiet', '--workers', 1))
    assert rc == 2 and err.splitlines()[-1].startswith('error: ') and 'relative to that folder' in err, err
    assert not (tmp_path/'o'/'checkpoints').exists() # stopped before any prediction

def test_tta_predictions_repeat_byte_for_byte(world, tmp_path):
    "`predict.model_probs` with TTA twice on the same crops gives the same bytes, so a resumed `run` submits the same answers."
    from iwildcam_nb.items import read_crops
    from iwildcam_nb.predict import model_probs
    root, _ = world
    crops = read_crops(root/'crops').head(32)
    for i in (1, 2): model_probs(root/'models'/'crop', root/'crops', tmp_path/f'{i}.csv', crops=crops, tta=True, show_progress=False)
    assert (tmp_path/'1.csv').read_bytes() == (tmp_path/'2.csv').read_bytes()

def test_failed_sequence_and_box_flood_do_not_stop_predict(world, tmp_path):
    """A camera whose only files are random bytes named .jpg, a dangling and a looping symlink, beside a good camera one of
    whose photos has more boxes than `--max_boxes`, and a photo over `--max_megapixels`: the run finishes, the failed sequence
    listed with its reason, the flood capped, the large photo refused by name."""
    from PIL import Image
    root, data = world
    photos = tmp_path/'photos'; (photos/'camA').mkdir(parents=True); (photos/'camB').mkdir()
    good = sorted((data/'test').glob('*.jpg'))[:3]
    for f in good: shutil.copy(f, photos/'camA'/f.name)
    (photos/'camB'/'junk.jpg').write_bytes(os.urandom(2000))
    os.symlink(photos/'nowhere.jpg', photos/'camB'/'gone.jpg'); os.symlink('loop.jpg', photos/'camB'/'loop.jpg')
    Image.new('RGB', (1500, 1000), 'gray').save(photos/'camB'/'huge.jpg') # 1.5 MP, the limit is 1
    box = lambda c=0.9: {'category': '1', 'conf': c, 'bbox': [0.1, 0.1, 0.3, 0.3]}
    flood = [box(round(0.99 - i/100, 2)) for i in range(12)] # 12 boxes on one photo, the cap is 5
    md = {'info': {'format_version': '1.3'}, 'detection_categories': {'1': 'animal'},
          'images': [{'file': f'camA/{f.name}', 'detections': flood if i == 0 else [box()]} for i, f in enumerate(good)]
                    + [{'file': f'camB/{f}', 'detections': [box()]} for f in ('junk.jpg', 'huge.jpg')]}
    (tmp_path/'md.json').write_text(json.dumps(md))
    rc, stdout, err = finish(cli('predict', '--images', photos, '--detections', tmp_path/'md.json', '--models', root/'models',
                                 '--out', tmp_path/'o', '--quiet', '--workers', 1, '--max_boxes', 5, '--max_megapixels', 1))
    assert rc == 0, err
    seqs, fails = pd.read_csv(tmp_path/'o'/'sequences.csv'), pd.read_csv(tmp_path/'o'/'failures.csv')
    assert (seqs[seqs.location == 'camA'].source != 'no answerable photo').all() and (seqs.location == 'camA').any()
    assert (seqs[seqs.location == 'camB'].source == 'no answerable photo').all() and (seqs.location == 'camB').sum() >= 1
    assert {'camB/junk.jpg', 'camB/gone.jpg', 'camB/loop.jpg', 'camB/huge.jpg'} <= set(fails.image_id[fails.stage == 'read'])
    assert '1500x1000 is 1.5 MP, over the limit of 1 MP' in fails[fails.stage == 'read'].set_index('image_id').reason['camB/huge.jpg']
    sub = pd.read_csv(tmp_path/'o'/'submission_2021.csv')
    assert set(sub.Id) == set(seqs.seq_id) and 'no answerable photo' in stdout
    assert '1 photos have more than 5 boxes' in err, err
    out_md = json.loads((tmp_path/'o'/'megadetector_classified.json').read_text())
    kept = next(im['detections'] for im in out_md['images'] if im['file'] == f'camA/{good[0].name}')
    assert [d['conf'] for d in kept] == [0.99, 0.98, 0.97, 0.96, 0.95] # the five most confident

def test_json_over_the_size_limit_is_refused(world, tmp_path):
    "A JSON input over `--max_json_mb` is refused before it is parsed, in one line naming the file and the option."
    rc, _, err = finish(cli(*predict_args(world, tmp_path/'o', '--max_json_mb', 0.01)))
    assert rc == 2 and 'Traceback' not in err, err
    assert '.json: -: ' in err.splitlines()[-1] and 'over the limit of 0 MB for a JSON file (option --max_json_mb)' in err, err

def test_predict_into_a_held_folder_is_refused(world, tmp_path):
    "While one run holds --out (here: this test, through `core.folder_lock`), a `predict --no_tta` into it is refused, naming the holder."
    from iwildcam_nb.core import folder_lock
    with folder_lock(tmp_path/'o', 'iwildcam-nb predict --out o (the first run)'):
        rc, _, err = finish(cli(*predict_args(world, tmp_path/'o', '--no_tta')))
    assert rc == 2 and err.splitlines()[-1].startswith('error: ') and 'Traceback' not in err, err
    assert f'in use by process {os.getpid()}' in err and 'the first run' in err, err
    assert not (tmp_path/'o'/'checkpoints').exists() and not (tmp_path/'o'/'cache').exists()

def test_saved_models_follow_the_umask(world):
    "A models folder shared with colleagues: the weights are as readable as their JSON (safetensors alone would write 0600)."
    m = os.umask(0o022); os.umask(m)
    for f in ('full.safetensors', 'full.json'): assert (world[0]/'models'/f).stat().st_mode & 0o777 == 0o666 & ~m, f

def offline(tmp_path)->dict:
    "Environment where downloads fail at once (a proxy on a closed local port) and MegaDetector's model cache is empty."
    (tmp_path/'tmp').mkdir()
    return {'https_proxy': 'http://127.0.0.1:9', 'HTTPS_PROXY': 'http://127.0.0.1:9', 'TMPDIR': str(tmp_path/'tmp'),
            'YOLO_OFFLINE': '1'}

def test_predict_without_detections_offline_names_the_option(world, tmp_path):
    "No MegaDetector file, no network, no local weights: one `error:` line saying to pass --detector_weights, nothing written."
    if importlib.util.find_spec('megadetector') is None: pytest.skip('megadetector is not installed')
    root, data = world
    rc, _, err = finish(cli('predict', '--images', data/'test', '--models', root/'models', '--out', tmp_path/'o',
                            '--annotations', data/SAMPLE_TEST, '--quiet', env=offline(tmp_path)))
    assert rc == 2 and 'Traceback' not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines[-1].startswith('error: ') and '--detector_weights' in lines[-1], err
    assert sum(l.startswith('error: ') for l in lines) == 1, err
    assert not (tmp_path/'o').exists() # nothing written

def test_predict_runs_the_detector_first(world, tmp_path):
    "No MegaDetector file, a local (tiny, random) model: the detector runs, then everything else; each file validates."
    if importlib.util.find_spec('megadetector') is None: pytest.skip('megadetector is not installed')
    from iwildcam_nb.detect import check_md_file, make_tiny_detector
    from iwildcam_nb.outputs import check_md_format
    root, data = world
    tiny, out = make_tiny_detector(tmp_path/'tiny_md.pt'), tmp_path/'o'
    rc, stdout, err = finish(cli('predict', '--images', data/'test', '--models', root/'models', '--out', out,
                                 '--annotations', data/SAMPLE_TEST, '--detector_weights', tiny, '--quiet',
                                 env=offline(tmp_path)))
    assert rc == 0, err
    check_md_file(out/'detections.json') # MegaDetector's own validator, format 1.5's thresholds
    check_md_format(json.loads((out/'megadetector_classified.json').read_text()))
    test = json.loads((data/SAMPLE_TEST).read_text())
    seqs = pd.read_csv(out/'sequences.csv')
    assert set(seqs.seq_id) == {im['seq_id'] for im in test['images']} # every sequence answered
    for f in OUTPUT_FILES: assert (out/f).exists(), f

def test_place_options_reach_the_outputs(world, tmp_path):
    "--taxonomy, --gps and --country as SpeciesNet takes them: taxonomy strings and each photo's country in its file."
    root, data = world
    gps = json.loads((data/'metadata'/'gps_locations.json').read_text())
    rc, _, err = finish(cli(*predict_args(world, tmp_path/'o', '--taxonomy', data/'metadata'/'sample_taxonomy.csv',
                                          '--gps', data/'metadata'/'gps_locations.json', '--country', 'CRI')))
    assert rc == 0, err
    sn = json.loads((tmp_path/'o'/'speciesnet_predictions.json').read_text())['predictions']
    test = json.loads((data/SAMPLE_TEST).read_text())['images']
    loc = {im['file_name']: str(im['location']) for im in test}
    for p in sn: # a camera with coordinates: the country found from them; one without: --country
        assert len(p['country']) == 3 and (p['country'] == 'CRI' or loc[p['filepath']] in gps), p
        assert ('latitude' in p) == (loc[p['filepath']] in gps)
    answers = [b['processed_classification']['class'] for p in sn for b in p.get('detections', [])
               if 'processed_classification' in b]
    assert answers and all(a.count(';') == 6 for a in answers) # SpeciesNet's taxonomy strings
    rc, _, err = finish(cli(*predict_args(world, tmp_path/'p', '--country', 'Panama')))
    assert rc == 2 and 'ISO 3166-1 alpha-3' in err and 'Traceback' not in err, err
    assert not (tmp_path/'p'/'checkpoints').exists()
