"""Shared pytest fixtures: the small real photo set in tests/data/real, the big files in ../shared, and a clean offline environment."""
import os, signal
from pathlib import Path
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT/'tests'/'data'/'real' # real camera-trap photos shipped with the repo (see tests/data/real/README.md)
SHARED_DATA = Path(os.environ.get('IWILDCAM_SHARED_DATA', ROOT.parent/'shared'/'data'))

def ctrl_c_as_on_a_terminal():
    "`preexec_fn` of a child process: SIGINT to its default, which Python turns into KeyboardInterrupt."
    # A test runner started in the background of a script ignores SIGINT, and an ignored signal stays ignored across
    # exec: without this a child that a test interrupts would run to its end.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def shared_dir(name):
    "Folder `name` under ../shared/data (big files, benchmarks), or skip the test cleanly when it is absent."
    d = SHARED_DATA/name
    if not d.is_dir(): pytest.skip(f'{d} not found (the big real data lives in ../shared, outside the repo)')
    return d

@pytest.fixture
def real_dir(): return REAL

@pytest.fixture
def speciesnet_dir(): return REAL/'speciesnet'

@pytest.fixture
def ena24_dir(): return REAL/'ena24'

@pytest.fixture
def fullres_dir(): return shared_dir('fullres_cct')

def simulated_answers(folder)->dict:
    "The embedded sample (one sequence per camera) and SIMULATED answers: crop_probs by crop_id (boxes >= 0.3), probs and image answers `ip` by image_id."
    import pandas as pd
    from iwildcam_nb.crops import crop_id
    from iwildcam_nb.sample import make_sample, read_sample
    from iwildcam_nb.test_utils import simulate_probs
    from iwildcam_nb.vocab import class_vocab
    s = read_sample(make_sample(folder, seed=0, seqs_per_location=1))
    vocab = class_vocab(s['categories'])
    truth = s['labels'].set_index('image_id').category_id
    d = s['detections'][s['detections'].conf >= 0.3]
    cids = pd.Index([crop_id(i, j) for i, j in zip(d.image_id, d.det_idx)], name='crop_id')
    crop_probs = simulate_probs(pd.Series(truth.reindex(d.image_id).to_numpy(), index=cids), vocab, seed=1)
    probs = simulate_probs(truth, vocab).rename_axis('image_id')
    ip = pd.DataFrame({'image_id': probs.index, 'label': probs.idxmax(axis=1).to_numpy(),
                       'score': probs.max(axis=1).to_numpy(), 'source': 'simulated'})
    return dict(s, crop_probs=crop_probs, probs=probs, ip=ip)
