"""The `iwildcam-nb` command line end to end, as a user runs it: real subprocesses, real files."""
import json, shutil, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest

def iwn(*args, cwd=None):
    "Run the installed console script; return the CompletedProcess."
    exe = shutil.which('iwildcam-nb') or str(Path(sys.executable).parent/'iwildcam-nb')
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "A tiny embedded data set made by the CLI itself."
    d = tmp_path_factory.mktemp('tiny')/'data'
    r = iwn('sample', d, '--seed', 3, '--width', 64, '--height', 48, '--seqs_per_location', 2)
    assert r.returncode == 0, r.stderr
    return d

def test_help_lists_commands():
    r = iwn('--help')
    assert r.returncode == 0
    for c in ('sample', 'demo', 'resize', 'crops'): assert c in r.stdout

def test_crops_requires_its_paths():
    r = iwn('crops', '--images', '.')
    assert r.returncode == 2 and '--detections' in r.stderr

def test_no_command_is_a_usage_error():
    r = iwn()
    assert r.returncode == 2 and 'usage: iwildcam-nb COMMAND' in r.stderr

@pytest.mark.parametrize('args', [('--width', 0), ('--seqs_per_location', 0)])
def test_bad_option_value_is_one_line_error(tmp_path, args):
    r = iwn('sample', tmp_path/'s', *args)
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'Traceback' not in r.stderr

def test_output_that_is_a_file_is_one_line_error(tmp_path):
    (tmp_path/'f').write_text('x')
    r = iwn('demo', '--out', tmp_path/'f', '--quiet')
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'Traceback' not in r.stderr

def test_demo_does_not_reuse_a_different_sample(tmp_path):
    "A sample with the demo's seed but another size is not the demo's data set: the demo makes its own."
    assert iwn('sample', tmp_path/'d'/'data', '--width', 64, '--height', 48, '--seqs_per_location', 1).returncode == 0
    r = iwn('demo', '--out', tmp_path/'d', '--quiet', '--arch', 'tiny', '--epochs', 1, '--no_pretrained')
    assert r.returncode == 0, r.stderr
    assert 'using the data set already in' not in r.stdout
    from PIL import Image
    assert Image.open(next((tmp_path/'d'/'data'/'train').glob('*.jpg'))).size == (320, 240)

def test_unknown_command():
    r = iwn('frobnicate')
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr

def test_cli_does_not_import_torch():
    code = "import sys, iwildcam_nb.cli; print('torch' in sys.modules, 'fastai' in sys.modules)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ['False', 'False']

def test_sample_writes_iwildcam_layout(tiny):
    for f in ('metadata/iwildcam2021_train_annotations.json', 'metadata/iwildcam2021_test_information.json',
              'metadata/iwildcam2021_megadetector_results.json'):
        assert json.loads((tiny/f).read_text())['images'], f
    assert list((tiny/'train').glob('*.jpg')) and list((tiny/'test').glob('*.jpg'))

def test_resize_then_rerun_skips(tiny, tmp_path):
    r = iwn('resize', tiny/'train', tmp_path/'r', '--size', 32, '--quiet', '--workers', 2)
    assert r.returncode == 0, r.stderr
    n = len(list((tiny/'train').glob('*.jpg')))
    assert f'{n} done' in r.stdout
    assert len(list((tmp_path/'r').glob('*.jpg'))) == n
    r = iwn('resize', tiny/'train', tmp_path/'r', '--size', 32, '--quiet')
    assert f'{n} skipped' in r.stdout

def test_resize_from_coco_list(tiny, tmp_path):
    coco = tiny/'metadata/iwildcam2021_test_information.json'
    r = iwn('resize', tiny/'test', tmp_path/'r', '--size', 32, '--coco', coco, '--quiet', '--workers', 1)
    assert r.returncode == 0, r.stderr
    names = {im['file_name'] for im in json.loads(coco.read_text())['images']}
    assert {p.name for p in (tmp_path/'r').glob('*.jpg')} == names

def test_crops_table(tiny, tmp_path):
    r = iwn('crops', '--images', tiny/'train', '--detections', tiny/'metadata/iwildcam2021_megadetector_results.json', '--out', tmp_path/'c',
            '--coco', tiny/'metadata/iwildcam2021_train_annotations.json', '--size', 32, '--quiet', '--workers', 1)
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(tmp_path/'c'/'crops.csv')
    assert len(t) > 0 and (t.conf >= 0.3).all()
    assert all((tmp_path/'c'/p).exists() or Path(p).exists() for p in t.path)

def test_resize_refuses_file_name_escaping_dst(tiny, tmp_path):
    "A file_name from somebody else's JSON that climbs out of DST is refused before anything is written."
    src, dst = tmp_path/'src', tmp_path/'dst'
    src.mkdir()
    victim = tmp_path/'victim.jpg'
    shutil.copy(next((tiny/'train').glob('*.jpg')), victim)
    before = victim.read_bytes()
    coco = {'images': [{'id': 'a', 'file_name': '../victim.jpg'}], 'annotations': [], 'categories': [{'id': 0, 'name': 'empty'}]}
    (tmp_path/'evil.json').write_text(json.dumps(coco))
    r = iwn('resize', src, dst, '--coco', tmp_path/'evil.json', '--size', 16, '--quiet', '--workers', 1)
    errors = [l for l in r.stderr.splitlines() if l.startswith('error: ')] # after the warning that no image has a datetime
    assert r.returncode == 2 and len(errors) == 1 and '../victim.jpg' in errors[0]
    assert victim.read_bytes() == before and not list(dst.rglob('*.jpg'))

def test_crop_names_stay_inside_out_dir(tiny, tmp_path):
    "Crop files are named from image id and box index, so a hostile `file` cannot steer where a crop is written."
    md = {'images': [{'file': '../../escape.jpg', 'detections': [{'category': '1', 'conf': 0.9, 'bbox': [0.1, 0.1, 0.5, 0.5]}]}],
          'detection_categories': {'1': 'animal'}, 'info': {'format_version': '1.4'}}
    (tmp_path/'md.json').write_text(json.dumps(md))
    r = iwn('crops', '--images', tiny/'train', '--detections', tmp_path/'md.json', '--out', tmp_path/'c', '--quiet', '--workers', 1)
    assert r.returncode == 0 and '1 failed' in r.stdout # the source image does not exist: a listed failure
    assert 'escape.jpg' in (tmp_path/'c'/'crops_failures.csv').read_text()
    assert not [p for p in tmp_path.rglob('*.jpg') if tmp_path/'c' not in p.parents]

@pytest.mark.parametrize('content,field', [('{"images": [', 'malformed JSON'), ('{"images": [{"id": "a"}]}', 'file_name')])
def test_bad_coco_is_one_line_error(tiny, tmp_path, content, field):
    (tmp_path/'bad.json').write_text(content)
    r = iwn('resize', tiny/'train', tmp_path/'r', '--coco', tmp_path/'bad.json', '--quiet')
    assert r.returncode == 2
    assert r.stderr.startswith('error: ') and 'bad.json' in r.stderr and field in r.stderr
    assert 'Traceback' not in r.stderr

def test_crops_coco_matches_windows_paths_in_batch_file(tiny, tmp_path):
    "MegaDetector run on Windows writes `cam1\\a.jpg`; the COCO file says `cam1/a.jpg`: they are the same image."
    (tmp_path/'imgs'/'cam1').mkdir(parents=True)
    shutil.copy(next((tiny/'train').glob('*.jpg')), tmp_path/'imgs'/'cam1'/'a.jpg')
    md = {'images': [{'file': 'cam1\\a.jpg', 'detections': [{'category': '1', 'conf': 0.9, 'bbox': [0.1, 0.1, 0.5, 0.5]}]},
                     {'file': 'cam2\\b.jpg', 'detections': [{'category': '1', 'conf': 0.9, 'bbox': [0.1, 0.1, 0.5, 0.5]}]}],
          'detection_categories': {'1': 'animal'}, 'info': {'format_version': '1.4'}}
    coco = {'images': [{'id': 'a', 'file_name': 'cam1/a.jpg'}], 'annotations': [], 'categories': [{'id': 0, 'name': 'empty'}]}
    (tmp_path/'md.json').write_text(json.dumps(md)); (tmp_path/'coco.json').write_text(json.dumps(coco))
    r = iwn('crops', '--images', tmp_path/'imgs', '--detections', tmp_path/'md.json', '--out', tmp_path/'c',
            '--coco', tmp_path/'coco.json', '--quiet', '--workers', 1)
    assert r.returncode == 0, r.stderr
    assert '1 done' in r.stdout and 'failed' not in r.stdout # b.jpg is not in the COCO file: not cropped, not a failure
    assert len(pd.read_csv(tmp_path/'c'/'crops.csv')) == 1

def test_missing_detections_file(tiny, tmp_path):
    r = iwn('crops', '--images', tiny/'train', '--detections', tmp_path/'nope.json', '--out', tmp_path/'c', '--quiet')
    assert r.returncode == 2 and 'nope.json' in r.stderr and 'file not found' in r.stderr

@pytest.fixture(scope='module')
def demo_out(tmp_path_factory):
    "The real demo (EfficientNet-Lite0 with its offline weights, the quick recipe), run once for the tests below."
    out = tmp_path_factory.mktemp('demo')/'demo'
    r = iwn('demo', '--out', out, '--quiet')
    assert r.returncode == 0, r.stderr
    return out, r.stdout

def test_demo_end_to_end(demo_out):
    out, stdout = demo_out
    for word in ('images', 'sequences', 'locations', 'species', 'detections'): assert word in stdout
    from iwildcam_nb.metrics import read_submission
    from iwildcam_nb.data import load_coco
    test = load_coco(out/'data'/'metadata'/'iwildcam2021_test_information.json').images
    assert sorted(read_submission(out/'submission_2021.csv').index) == sorted(test.seq_id.unique())
    assert (out/'report'/'confusion.png').exists() and (out/'models'/'crop.safetensors').exists()
    s = pd.read_csv(out/'evaluation.csv').set_index('method').score
    assert s['count: tracks'] < s['always zero'] # counting beats the trivial baseline
    assert s['crop model (no crop: empty)'] > 0.5 # 6 classes: chance is 0.17

def test_demo_scores_taxonomy_and_place(demo_out):
    "The demo's evaluation has the place rows, and their `as run` rows are the run's own scores."
    out, stdout = demo_out
    ev = pd.read_csv(out/'evaluation.csv')
    assert 'taxonomy and place' in stdout
    get = lambda measure, method: ev.score[(ev.measure == measure) & (ev.method == method)].item()
    assert get('image accuracy', 'as run') == get('image accuracy', 'ensemble')
    assert get('MCRMSE (lower is better)', 'as run') == get('MCRMSE (lower is better)', 'count: linked')
    for start in ('geofence from training', 'location + time prior, weight', 'SpeciesNet rules (rollup 0.65)',
                  'SpeciesNet rules (rollup 0.65) + geofence + sequence smoothing'):
        assert ev.method.str.startswith(start).any(), start
    right = ev[ev.measure == 'image answers right at their level'].set_index('method').score
    exact = ev[(ev.measure == 'image accuracy') & ev.method.isin(right.index)].set_index('method').score
    assert (right >= exact.reindex(right.index) - 1e-12).all() # a rollup can only add right answers

def test_demo_rerun_skips_every_step(demo_out):
    out, _ = demo_out
    r2 = iwn('demo', '--out', out, '--quiet') # a rerun reuses the data set and every finished step
    assert r2.returncode == 0 and 'using the data set already in' in r2.stdout
    assert r2.stdout.count('skipped') == 6, r2.stdout

def test_score_command(demo_out):
    out, _ = demo_out
    r = iwn('score', out/'submission_2021.csv', out/'data'/'metadata'/'sample_sequence_counts.csv')
    assert r.returncode == 0, r.stderr
    assert 'MCRMSE' in r.stdout and 'SCRSSE' in r.stdout

def test_score_refuses_mismatched_truth(demo_out, tmp_path):
    out, _ = demo_out
    truth = pd.read_csv(out/'data'/'metadata'/'sample_sequence_counts.csv')
    truth.loc[len(truth)] = ['not-a-sequence', 'test', 3, 1]
    truth.to_csv(tmp_path/'truth.csv', index=False)
    r = iwn('score', out/'submission_2021.csv', tmp_path/'truth.csv')
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'not-a-sequence' in r.stderr

def test_probs_refuses_tampered_model(demo_out, tmp_path):
    out, _ = demo_out
    for f in ('crop.safetensors', 'crop.json'): shutil.copy(out/'models'/f, tmp_path/f)
    meta = json.loads((tmp_path/'crop.json').read_text()); meta['vocab'] = meta['vocab'][:-1]
    (tmp_path/'crop.json').write_text(json.dumps(meta))
    r = iwn('probs', '--model', tmp_path/'crop', '--folder', out/'crops'/'test', '--out', tmp_path/'p.csv')
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'crop.json' in r.stderr, r.stderr

def test_train_without_offline_weights_says_what_to_do(tiny, tmp_path):
    r = iwn('crops', '--images', tiny/'train', '--detections', tiny/'metadata'/'iwildcam2021_megadetector_results.json',
            '--coco', tiny/'metadata'/'iwildcam2021_train_annotations.json', '--out', tmp_path/'c', '--quiet')
    assert r.returncode == 0, r.stderr
    r = iwn('train', '--kind', 'crop', '--folder', tmp_path/'c', '--coco', tiny/'metadata'/'iwildcam2021_train_annotations.json',
            '--out', tmp_path/'m', '--arch', 'resnet50', '--size', 32, '--epochs', 1, '--quiet')
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'Traceback' not in r.stderr
    assert 'weights' in r.stderr

def test_run_into_a_held_folder_is_refused(tiny, tmp_path):
    "While one run holds --out (here: this test, through `core.folder_lock`), `run` into it is refused at once, naming the holder."
    from iwildcam_nb.core import folder_lock
    m = tiny/'metadata'
    with folder_lock(tmp_path/'o', 'iwildcam-nb run --out o (the first run)'):
        r = iwn('run', '--train_json', m/'iwildcam2021_train_annotations.json', '--test_json', m/'iwildcam2021_test_information.json',
                '--megadetector', m/'iwildcam2021_megadetector_results.json', '--train_images', tiny/'train',
                '--test_images', tiny/'test', '--out', tmp_path/'o', '--quick', '--quiet')
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'Traceback' not in r.stderr, r.stderr
    assert 'in use by process' in r.stderr and 'the first run' in r.stderr
    assert not (tmp_path/'o'/'.steps.json').exists()

def test_compare_with_another_tools_file(demo_out, tmp_path):
    "`compare` against the demo's own SpeciesNet file agrees everywhere; a broken file is one `error:` line."
    out, _ = demo_out
    test_json = out/'data'/'metadata'/'iwildcam2021_test_information.json'
    r = iwn('compare', '--ours', out, '--theirs', out/'speciesnet_predictions.json', '--annotations', test_json,
            '--out', tmp_path/'c')
    assert r.returncode == 0, r.stderr
    n = json.loads(test_json.read_text())['images']
    assert f"sequences: {len({im['seq_id'] for im in n})} of {len({im['seq_id'] for im in n})} answered alike" in r.stdout
    assert pd.read_csv(tmp_path/'c'/'compare_species.csv').agreement.min() == 1.0
    (tmp_path/'bad.json').write_text('{"predictions": [{"filepath": 3}]}')
    r = iwn('compare', '--ours', out, '--theirs', tmp_path/'bad.json', '--out', tmp_path/'d')
    assert r.returncode == 2 and r.stderr.startswith('error: ') and 'bad.json' in r.stderr, r.stderr
