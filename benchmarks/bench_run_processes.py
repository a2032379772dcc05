"""Time `run` (train both models, predict, answer) on one process and on N processes under `accelerate launch`, and check they write the same bytes.

Usage: python benchmarks/bench_run_processes.py [--processes 2] [--seqs 150] [--out /tmp/bench_run]

The data set is the embedded one with --seqs sequences per camera (150: 2,708 training photos, 1,800 test photos,
3,040 and 2,293 crops at 320x240), so that the work is cut into several chunks (`features.FEATURE_CHUNK`,
`predict.PREDICT_CHUNK`). It is prepared once (resized frames and crops); each run then starts from a copy of that,
so the difference is training (the quick recipe's EfficientNet-Lite0 at 224 px with the head strategy: the
features are the long part) and prediction. Prints each step's seconds for both runs, the speed-up of N processes
over one, and whether models, probability tables and submissions are byte-identical.
"""
import argparse, filecmp, os, shutil, subprocess, sys, time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
SCRIPT = '''
import sys
from pathlib import Path
from iwildcam_nb.pipeline import sample_inputs, quick_config, run
from iwildcam_nb.distributed import is_main_process
steps = run(sample_inputs(Path(sys.argv[1])), Path(sys.argv[2]), quick_config(dict(strategy='head')), show_progress=False)
if is_main_process(): print(steps.to_csv(index=False))
'''
SAME = ['models/full.safetensors', 'models/crop.safetensors', 'preds/full_probs.csv', 'preds/crop_probs.csv',
        'submission_2021.csv', 'submission_2020.csv']

def launch(n:int)->list:
    "The command prefix that starts `n` processes (gloo on CPUs), or one plain process."
    if n == 1: return [sys.executable]
    return [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', str(n),
            '--num_machines', '1', '--main_process_port', '29655', '--mixed_precision', 'no', '--dynamo_backend', 'no']

def timed_run(n:int, root:Path, base:Path)->tuple:
    "(wall seconds, steps CSV) of one run on `n` processes into a copy of the prepared folder `base`."
    out = root/f'run{n}'
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(base, out)
    t0 = time.perf_counter()
    r = subprocess.run([*launch(n), str(root/'run.py'), str(root/'data'), str(out)], capture_output=True, text=True)
    if r.returncode: raise SystemExit(f'{n} process(es) failed:\n{r.stderr[-3000:]}')
    return time.perf_counter() - t0, r.stdout.strip().splitlines()[-7:]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--processes', type=int, default=2)
    p.add_argument('--seqs', type=int, default=150, help='sequences per camera of the embedded data set')
    p.add_argument('--out', default='/tmp/bench_run')
    a = p.parse_args()
    from iwildcam_nb.sample import make_sample
    from iwildcam_nb.pipeline import sample_inputs, load_inputs, prepare, quick_config
    root = Path(a.out); root.mkdir(parents=True, exist_ok=True)
    (root/'run.py').write_text(SCRIPT)
    inp = sample_inputs(make_sample(root/'data', seqs_per_location=a.seqs))
    base = root/'prepared'
    shutil.rmtree(base, ignore_errors=True)
    t0 = time.perf_counter()
    prepare(load_inputs(inp), inp, base, quick_config(), show_progress=False) # not counted
    print(f'prepared in {time.perf_counter() - t0:.0f} s (not counted); load {os.getloadavg()[0]:.1f}', flush=True)
    (t1, s1), (tn, sn) = timed_run(1, root, base), timed_run(a.processes, root, base)
    print('steps (s), one process:', *s1, f'\nsteps (s), {a.processes} processes:', *sn, sep='\n')
    print(f'\nrun: 1 process {t1:.1f} s, {a.processes} processes {tn:.1f} s: speed-up {t1/tn:.2f}x; load {os.getloadavg()[0]:.1f}')
    for f in SAME: print(f'{f}: {"same bytes" if filecmp.cmp(root/"run1"/f, root/f"run{a.processes}"/f, shallow=False) else "DIFFERENT"}')

if __name__ == '__main__': main()
