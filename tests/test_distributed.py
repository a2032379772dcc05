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
