"""Fault injection: `run` and `predict` are stopped at each kind of point (preparing photos, training, each prediction
checkpoint, writing the outputs), then run again; every file the resumed run leaves must equal, byte for byte, what an
uninterrupted run writes. The stop is a KeyboardInterrupt raised inside the n-th call of a function the stage uses (as
Ctrl-C would land there), and once a real `kill -9` of a separate process in the middle of training."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest

TINY = dict(arch='tiny', pretrained=False, size=32, frozen_epochs=0, epochs=1, bs=8)
SKIP = ('.iwildcam-nb.lock', '.feature_cache') # the lock names its last holder; the feature cache is keyed by absolute paths

TIMED = {'megadetector_classified.json': 'info', 'datapackage.json': 'created'} # fields that record when they were written

def outputs(root:Path)->dict:
    "Every file under `root` (but `SKIP`) -> its bytes; the files of `TIMED` without the field that records a time."
    res = {}
    for p in sorted(root.rglob('*')):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or any(s in rel for s in SKIP): continue
        if p.name in TIMED:
            d = json.loads(p.read_text()); d.pop(TIMED[p.name]); res[rel] = json.dumps(d).encode()
        else: res[rel] = p.read_bytes()
    return res

def assert_same(whole:Path, resumed:Path):
    a, b = outputs(whole), outputs(resumed)
    assert sorted(a) == sorted(b), set(a) ^ set(b)
    assert [f for f in a if a[f] != b[f]] == []
    assert not list(resumed.rglob('*.tmp*')), 'a temporary file outlived the resumed run'

class Calls:
    "Count the calls of `module.name` (monkeypatched), raising KeyboardInterrupt on call number `stop_at` (None: never)."
    def __init__(self, monkeypatch, module, name:str, stop_at:int|None=None):
        self.n, self.stop_at, fn = 0, stop_at, getattr(module, name)
        def wrapped(*a, **k):
            self.n += 1
            if self.n == self.stop_at: raise KeyboardInterrupt(f'injected at call {self.n} of {name}')
            return fn(*a, **k)
        monkeypatch.setattr(module, name, wrapped)

# The functions a stop is injected into: where photos are written (prepare), where a head or a model is fit (training),
# where each prediction is made (predict), and the atomic rename every output goes through (writing outputs).
def _points():
    import iwildcam_nb.preprocess as pre, iwildcam_nb.features as feat, iwildcam_nb.predict as pred, iwildcam_nb.core as core
    return {'prepare': (pre, 'save_image'), 'training': (feat, 'fit_steps'), 'predict': (pred, 'model_probs'), 'outputs': (core.os, 'replace')}

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from iwildcam_nb.sample import make_sample
    from iwildcam_nb.pipeline import sample_inputs
    root = tmp_path_factory.mktemp('faults')
    return root, sample_inputs(make_sample(root/'data', seed=3, width=64, height=48, seqs_per_location=2))

def cfg():
    from iwildcam_nb.pipeline import quick_config
    return quick_config(TINY, n_workers=0, tta=True) # TTA on: its augmentations must repeat exactly after a stop

@pytest.fixture(scope='module')
def whole_run(data):
    "An uninterrupted run, and how many times it called each fault point."
    from iwildcam_nb.pipeline import run
    root, inp = data
    mp = pytest.MonkeyPatch()
    calls = {k: Calls(mp, *v) for k,v in _points().items()}
    try: run(inp, root/'whole', cfg(), show_progress=False)
    finally: mp.undo()
    return root/'whole', {k: c.n for k,c in calls.items()}

# Where in the n calls of a point to stop. The last nine renames are the aggregate's outputs (probabilities, predictions,
# both submissions, failures, the MegaDetector, SpeciesNet and sequence files): 'last-8' stops before the first of them.
WHEN = dict(prepare=('first', 'middle', 'last'), training=('first', 'last'), predict=('first', 'last'), outputs=('last-8', 'last-4', 'last'))

def call_number(which:str, n:int)->int:
    return {'first': 1, 'middle': max(1, n//2), 'last': n}.get(which) or n - int(which.split('-')[1])

@pytest.mark.parametrize('where', [f'{p}:{w}' for p,ws in WHEN.items() for w in ws])
def test_run_stopped_then_resumed_equals_an_uninterrupted_run(data, whole_run, where, monkeypatch):
    from iwildcam_nb.pipeline import run
    root, inp = data
    whole, counts = whole_run
    point, which = where.split(':')
    out = root/f"run_{where.replace(':', '_')}"
    with monkeypatch.context() as m:
        c = Calls(m, *_points()[point], stop_at=call_number(which, counts[point]))
        with pytest.raises(KeyboardInterrupt): run(inp, out, cfg(), show_progress=False)
    assert c.n == c.stop_at
    run(inp, out, cfg(), show_progress=False)
    assert_same(whole, out)

# `predict` on new photos, with the models the whole run trained: stopped inside each checkpoint, and while writing.
PREDICT_CFG = dict(checkpoint_every=4, n_workers=0, tta=True)

def predict_into(data, whole, out):
    from iwildcam_nb.infer import InferConfig, predict_folder
    root, inp = data
    return predict_folder(inp.test_images, inp.megadetector, whole/'models', out, inp.test_json, InferConfig(**PREDICT_CFG), show_progress=False)

@pytest.fixture(scope='module')
def whole_predict(data, whole_run):
    import iwildcam_nb.infer as infer, iwildcam_nb.core as core
    mp = pytest.MonkeyPatch()
    calls = {'checkpoint': Calls(mp, infer.Checkpoints, 'save'), 'outputs': Calls(mp, core.os, 'replace')}
    try: predict_into(data, whole_run[0], data[0]/'predict_whole')
    finally: mp.undo()
    assert calls['checkpoint'].n >= 3, 'too few checkpoints to stop between'
    return data[0]/'predict_whole', {k: c.n for k,c in calls.items()}

def predict_stops():
    "Stop in every checkpoint of the embedded test split (5 of 4 photos), and before, among and at the last output write."
    return [f'checkpoint:{k}' for k in range(1, 6)] + [f'outputs:{w}' for w in WHEN['outputs']]

@pytest.mark.parametrize('where', predict_stops())
def test_predict_stopped_then_resumed_equals_an_uninterrupted_one(data, whole_run, whole_predict, where, monkeypatch):
    import iwildcam_nb.infer as infer, iwildcam_nb.core as core
    whole, counts = whole_predict
    point, which = where.split(':')
    if point == 'checkpoint' and int(which) > counts['checkpoint']: pytest.skip(f"the split has {counts['checkpoint']} checkpoints")
    stop_at = int(which) if point == 'checkpoint' else call_number(which, counts['outputs'])
    out = data[0]/f"predict_{where.replace(':', '_')}"
    with monkeypatch.context() as m:
        Calls(m, *((infer.Checkpoints, 'save') if point == 'checkpoint' else (core.os, 'replace')), stop_at=stop_at)
        with pytest.raises(KeyboardInterrupt): predict_into(data, whole_run[0], out)
    predict_into(data, whole_run[0], out)
    assert_same(whole, out)

RUN_SCRIPT = textwrap.dedent("""
    import sys
    from iwildcam_nb.pipeline import sample_inputs, run, quick_config
    cfg = quick_config({tiny!r}, n_workers=2, tta=True) # a pool of preprocessing workers, to be killed with their parent
    run(sample_inputs(sys.argv[1]), sys.argv[2], cfg, show_progress=False)
""")

def test_kill_9_in_training_then_resumed_equals_an_uninterrupted_run(data, whole_run, tmp_path):
    "A real `kill -9` of the process once the full model is saved (the crop model training): the lock it leaves is taken over."
    root, inp = data
    out, script = tmp_path/'killed', tmp_path/'run.py'
    script.write_text(RUN_SCRIPT.format(tiny=TINY))
    args = [sys.executable, str(script), str(inp.train_json.parent.parent), str(out)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    p = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < 300 and not (out/'models'/'full.safetensors').exists(): time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr.read()
    assert not (out/'submission_2021.csv').exists()
    r = subprocess.run(args, env=env, stderr=subprocess.PIPE, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert 'Traceback' not in r.stderr and 'BrokenPipeError' not in r.stderr
    assert_same(whole_run[0], out)
