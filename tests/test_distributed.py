"""Training and prediction on two CPU processes (gloo) under `torchrun` and under `accelerate launch`, through the command line as a user starts it."""
import json, os, socket, subprocess, sys
import pytest

def free_port()->int:
    "A TCP port nothing listens on now: each launch gets its own, so runs on one machine never meet on the default 29500."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

LAUNCHERS = {'torchrun': lambda: ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2'], # --standalone: rendezvous on a free port
             'accelerate': lambda: ['-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
                                    '--main_process_port', str(free_port()), '--mixed_precision', 'no', '--dynamo_backend', 'no']}
             # --multi_gpu: accelerate's multi-process mode, gloo without GPUs

@pytest.mark.parametrize('launcher', LAUNCHERS)
def test_two_cpu_processes_train_one_model(tmp_path, launcher):
    from iwildcam_nb.sample import make_sample, SAMPLE_FILES
    from iwildcam_nb.megadetector import load_megadetector
    from iwildcam_nb.crops import make_crops
    data = make_sample(tmp_path/'data', seed=2, width=96, height=72, seqs_per_location=3)
    make_crops(load_megadetector(data/SAMPLE_FILES['megadetector']), data/'train', tmp_path/'crops', size=32, n_workers=0, show_progress=False)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, *LAUNCHERS[launcher](), '-m', 'iwildcam_nb.cli', 'train', '--kind', 'crop',
           '--folder', str(tmp_path/'crops'), '--coco', str(data/SAMPLE_FILES['train']), '--out', str(tmp_path/'m'),
           '--arch', 'tiny', '--size', '32', '--frozen_epochs', '0', '--epochs', '2', '--no_pretrained', '--quiet']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('wrote ') == 1 # only rank 0 writes
    assert 'process 1 of 2: done' in r.stdout # the launcher really started a second process of the same run
    meta = json.loads((tmp_path/'m'/'crop.json').read_text())
    assert meta['kind'] == 'crop' and meta['arch'] == 'tiny'
    assert sorted(p.name for p in (tmp_path/'m').iterdir()) == ['crop.json', 'crop.safetensors'] # no temp files left

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from test_infer import shared_world
    return shared_world(tmp_path_factory)

def test_two_processes_predict_the_same_bytes(world, tmp_path):
    """`predict` under `accelerate launch` on two CPU processes: each predicts its share of the checkpoints, and
    rank 0 writes the same bytes as one process (MegaDetector's file apart from its `info`)."""
    from test_infer import predict_args, reference_run, same_outputs
    ref, _ = reference_run(world)
    out = tmp_path/'two'
    cmd = [sys.executable, *LAUNCHERS['accelerate'](), '-m', 'iwildcam_nb.cli',
           *map(str, predict_args(world, out, '--checkpoint_every', 4))]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'process 1 of 2: done (process 0 writes the outputs)' in r.stdout and r.stdout.count('wrote:') == 1
    same_outputs(ref, out)
    parts = sorted((out/'checkpoints').glob('part_*.npz'))
    assert [p.name for p in parts] == sorted(p.name for p in (ref/'checkpoints').glob('part_*.npz'))
    t, half = [p.stat().st_mtime_ns for p in parts], (len(parts) + 1)//2 # rank 0 takes the first half, rank 1 the rest
    assert t[half] < t[half - 1], 'the second half was not predicted beside the first, by another process'

RUN_SCRIPT = '''
import sys
from pathlib import Path
from iwildcam_nb.pipeline import sample_inputs, quick_config
import iwildcam_nb.predict
from iwildcam_nb.cli import _run
data, out = map(Path, sys.argv[1:3])
iwildcam_nb.predict.PREDICT_CHUNK = 5 # several chunks for the two processes to share
cfg = quick_config(dict(arch='tiny', pretrained=False, size=32, frozen_epochs=0, epochs=1, bs=8), n_workers=0)
_run(sample_inputs(data), out, cfg, quiet=True) # what `iwildcam-nb run` calls, with a tiny network
'''

def test_run_under_accelerate_shares_the_steps(tmp_path, monkeypatch):
    """`run` launched on two CPU processes: rank 0 holds the folder, prepares, answers and prints; both train
    (data-parallel) and predict their share. The probability tables have the bytes one process writes with the
    models the run trained, and a second launch resumes with every step skipped."""
    from iwildcam_nb.sample import make_sample
    from iwildcam_nb.pipeline import PROBS, sample_inputs, load_inputs
    import iwildcam_nb.predict
    from iwildcam_nb.predict import model_probs
    from iwildcam_nb.core import LOCK_FILE
    data = make_sample(tmp_path/'data', seed=3, width=64, height=48, seqs_per_location=2)
    (tmp_path/'run.py').write_text(RUN_SCRIPT)
    out, env = tmp_path/'out', {**os.environ, 'OMP_NUM_THREADS': '1'}
    launch = lambda: subprocess.run([sys.executable, *LAUNCHERS['accelerate'](), str(tmp_path/'run.py'), str(data), str(out)],
                                    capture_output=True, text=True, env=env, timeout=900)
    r = launch()
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'process 1 of 2: done (process 0 writes the outputs)' in r.stdout and r.stdout.count('predict crop') == 1, r.stdout
    assert json.loads((out/'.steps.json').read_text()).keys() == {'prepare', 'train full', 'train crop', 'predict full', 'predict crop', 'aggregate'}
    assert (out/'submission_2021.csv').is_file() and (out/LOCK_FILE).read_text() == '' # answered, and the folder let go
    test = load_inputs(sample_inputs(data)).images.query("split == 'test'")
    assert len(test) > 10 # more chunks of 5 than processes
    monkeypatch.setattr(iwildcam_nb.predict, 'PREDICT_CHUNK', 5) # the launch's chunks, in this one process
    for kind, folder in (('full', out/'resized'/'test'), ('crop', out/'crops'/'test')):
        one = tmp_path/f'{kind}_one_process.csv'
        p = model_probs(out/'models'/kind, folder, one, images=test if kind == 'full' else None, show_progress=False)
        assert len(p) > 0
        assert one.read_bytes() == (out/PROBS[kind]).read_bytes(), f'{kind}: two processes wrote other bytes than one'
    r = launch()
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('skipped') == 6, r.stdout
