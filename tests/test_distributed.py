"""Training under `torchrun` on two CPU processes (gloo), through the command line as a user starts it."""
import json, os, subprocess, sys

def test_torchrun_two_cpu_processes_train_one_model(tmp_path):
    from iwildcam_nb.sample import make_sample, SAMPLE_FILES
    from iwildcam_nb.data import load_megadetector
    from iwildcam_nb.preprocess import make_crops
    data = make_sample(tmp_path/'data', seed=2, width=96, height=72, seqs_per_location=3)
    make_crops(load_megadetector(data/SAMPLE_FILES['megadetector']), data/'train', tmp_path/'crops', size=32, n_workers=0, show_progress=False)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '-m', 'iwildcam_nb.cli', 'train', '--kind', 'crop',
           '--folder', str(tmp_path/'crops'), '--coco', str(data/SAMPLE_FILES['train']), '--out', str(tmp_path/'m'),
           '--arch', 'tiny', '--size', '32', '--frozen_epochs', '0', '--epochs', '2', '--no_pretrained', '--quiet']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('wrote ') == 1 # only rank 0 writes and prints
    meta = json.loads((tmp_path/'m'/'crop.json').read_text())
    assert meta['kind'] == 'crop' and meta['arch'] == 'tiny'
    assert sorted(p.name for p in (tmp_path/'m').iterdir()) == ['crop.json', 'crop.safetensors'] # no temp files left
