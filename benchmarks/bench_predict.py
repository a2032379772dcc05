"""Time `iwildcam-nb predict` stage by stage on real full-resolution camera-trap photos, and what checkpointing costs.

Usage: python benchmarks/bench_predict.py [--photos DIR] [--arch tf_efficientnet_lite0] [--boxes 2] [--small 4] [--large 64]
       python benchmarks/bench_predict.py --processes 2 [--copies 4] [--small 4]

The photos are ../shared/data/fullres_cct (39 iWildCam 2019 frames, 2048x1494, no EXIF, no MegaDetector file), so a
MegaDetector file is made up for them (seeded: --boxes boxes per photo, conf 0.2-1.0). The two models are the quick
recipe's (--arch at 64 px) trained for one epoch on the embedded data set: their answers are meaningless here, their
speed is the point. Each stage of `infer.predict_folder` is timed on its own, in the order the command runs them:
reading photo headers and EXIF (folder mode), the MegaDetector file, resizing and cropping, the checkpointed
predictions with TTA, and the answers with every output file. The prediction stage runs twice on fresh folders, with
checkpoints of --small and of --large photos: the ratio of the two times is what small checkpoints cost. Prints
photos/s per stage and the ratio; a ratio near 1 means checkpoints are cheap enough to keep small.

With --processes N (issue 17) it times `iwildcam-nb predict` itself instead: the same photos (--copies links of
each, one camera folder per copy, to have enough checkpoints) predicted by one process, by one process with N
threads, and by N processes under `accelerate launch --multi_gpu` (gloo on CPUs), each into a fresh output folder
holding the same finished resize/crop cache, so that the difference is the prediction. It prints the command's
wall time and the prediction stage's (the checkpoints' manifest to the last checkpoint written), the speed-up of N
processes over one, and whether the outputs are byte-identical.
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
ROOT = Path(__file__).resolve().parent.parent

def fake_megadetector(files:list, path:Path, boxes:int, seed:int=0)->Path:
    "A MegaDetector batch-format file with `boxes` seeded random animal boxes per photo."
    rng, ims = np.random.default_rng(seed), []
    for f in files:
        xy, wh = rng.uniform(0, .6, (boxes, 2)), rng.uniform(.05, .35, (boxes, 2))
        dets = [{'category': '1', 'conf': round(float(c), 3), 'bbox': [round(float(v), 4) for v in (*p, *s)]}
                for p, s, c in zip(xy, wh, rng.uniform(.2, 1, boxes))]
        ims.append({'file': f, 'detections': sorted(dets, key=lambda d: -d['conf'])})
    path.write_text(json.dumps({'info': {'format_version': '1.4', 'detector': 'simulated'},
                                'detection_categories': {'1': 'animal', '2': 'person', '3': 'vehicle'}, 'images': ims}))
    return path

def train_models(tmp:Path, arch:str)->Path:
    "Both quick-recipe models, one epoch on the embedded data set."
    from iwildcam_nb.sample import make_sample, read_sample, SAMPLE_FILES
    from iwildcam_nb.megadetector import load_megadetector
    from iwildcam_nb.preprocess import resize_images
    from iwildcam_nb.crops import make_crops
    from iwildcam_nb.models import QUICK, train
    data = make_sample(tmp/'data', seed=0, seqs_per_location=4)
    s = read_sample(data)
    resize_images(data/'train', tmp/'resized', size=128, n_workers=0, show_progress=False)
    make_crops(load_megadetector(data/SAMPLE_FILES['megadetector']), data/'train', tmp/'crops', n_workers=0, show_progress=False)
    for kind, folder in (('full', tmp/'resized'), ('crop', tmp/'crops')):
        train(kind, s['images'], s['labels'], s['categories'], folder, tmp/'models', QUICK[kind], show_progress=False,
              arch=arch, frozen_epochs=0, epochs=1)
    return tmp/'models'

def timed(fn):
    t0 = time.perf_counter(); out = fn()
    return out, time.perf_counter() - t0

OUTPUTS = ('sequences.csv', 'submission_2021.csv', 'submission_2020.csv', 'failures.csv', 'preds/image_preds.csv',
           'preds/seq_preds.csv', 'preds/full_probs.csv', 'preds/crop_probs.csv', 'speciesnet_predictions.json')

def linked_photos(photos:Path, dest:Path, copies:int)->Path:
    "`copies` camera folders in `dest`, each linking every photo of `photos`."
    from iwildcam_nb.photos import list_images
    for c in range(copies):
        (dest/f'cam_{c}').mkdir(parents=True)
        for f in list_images(photos): os.symlink(photos/f, dest/f'cam_{c}'/Path(f).name)
    return dest

def launch(n:int)->list:
    "The command prefix that runs the CLI in `n` processes (plain python for one)."
    if n == 1: return [sys.executable, '-m', 'iwildcam_nb.cli']
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    return [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', str(n), '--num_machines',
            '1', '--main_process_port', str(port), '--mixed_precision', 'no', '--dynamo_backend', 'no', '-m', 'iwildcam_nb.cli']

def timed_predict(n:int, threads:int, args:list, warm:Path, out:Path)->tuple:
    "Wall seconds of the command and of its prediction stage, `n` processes of `threads` threads, on `warm`'s cache."
    shutil.copytree(warm/'cache', out/'cache', symlinks=True)
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    t0 = time.time()
    r = subprocess.run([*launch(n), 'predict', *args, '--out', str(out)], capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if r.returncode: raise SystemExit(r.stderr[-3000:])
    ck = out/'checkpoints'
    stage = max(p.stat().st_mtime for p in ck.glob('part_*.npz')) - (ck/'manifest.json').stat().st_mtime
    return wall, stage

def processes_speedup(a, photos:Path, tmp:Path):
    "Time `predict` on one process, one process of N threads, and N processes; print the speed-up and byte identity."
    from iwildcam_nb.photos import list_images
    cards = linked_photos(photos, tmp/'cards', a.copies)
    md = fake_megadetector(list_images(cards), tmp/'md.json', a.boxes)
    print(f'training two {a.arch} models for one epoch on the embedded data set (not timed)...', flush=True)
    models = train_models(tmp, a.arch)
    args = ['--images', str(cards), '--detections', str(md), '--models', str(models), '--quiet',
            '--checkpoint_every', str(a.small)]
    r = subprocess.run([*launch(1), 'predict', *args, '--out', str(tmp/'warm')], capture_output=True, text=True)
    if r.returncode: raise SystemExit(r.stderr[-3000:])
    n_ck = len(list((tmp/'warm'/'checkpoints').glob('part_*.npz')))
    runs = {(1, 1): None, (1, a.processes): None, (a.processes, 1): None}
    for n, th in runs: runs[n, th] = timed_predict(n, th, args, tmp/'warm', tmp/f'out_{n}x{th}')
    print(f'\n{len(list_images(cards))} photos ({a.copies} links of each of {photos.name}), {n_ck} checkpoints of '
          f'{a.small}, {a.arch} at 64 px with TTA, machine: {os.cpu_count()} cores (shared: other jobs may run)')
    print(f'{"run":<34}{"command s":>10}{"predict s":>10}')
    for (n, th), (wall, stage) in runs.items(): print(f'{f"{n} process(es) x {th} thread(s)":<34}{wall:>10.1f}{stage:>10.1f}')
    (w1, s1), (wn, sn), (_, st) = runs[1, 1], runs[a.processes, 1], runs[1, a.processes]
    print(f'\n{a.processes} processes vs 1: {s1/sn:.2f}x the prediction stage, {w1/wn:.2f}x the whole command; '
          f'1 process of {a.processes} threads vs 1: {s1/st:.2f}x')
    same = all((tmp/'out_1x1'/f).read_bytes() == (tmp/f'out_{a.processes}x1'/f).read_bytes() for f in OUTPUTS)
    print(f'outputs of {a.processes} processes byte-identical to one process: {same}')

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--photos', default=str(ROOT.parent/'shared'/'data'/'fullres_cct'))
    p.add_argument('--arch', default='tf_efficientnet_lite0')
    p.add_argument('--boxes', type=int, default=2)
    p.add_argument('--small', type=int, default=4)
    p.add_argument('--large', type=int, default=64)
    p.add_argument('--processes', type=int, default=0, help='time predict on 1 vs this many processes instead')
    p.add_argument('--copies', type=int, default=4, help='with --processes: links of each photo, one camera per copy')
    a = p.parse_args()
    import torch; torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))
    from iwildcam_nb import infer
    from iwildcam_nb.photos import list_images
    photos = Path(a.photos)
    if not photos.is_dir(): raise SystemExit(f'{photos} not found (the real photos live in ../shared, outside the repo)')
    tmp = Path(tempfile.mkdtemp())
    if a.processes: return processes_speedup(a, photos, tmp)
    md = fake_megadetector(list_images(photos), tmp/'md.json', a.boxes)
    print(f'training two {a.arch} models for one epoch on the embedded data set (not timed)...', flush=True)
    models = train_models(tmp, a.arch)
    cfg, out = infer.InferConfig(n_workers=None), tmp/'out'
    learners = infer.load_models(models, cfg.bs)
    rows = []
    images, t = timed(lambda: infer.folder_images(photos, show_progress=False)); rows.append(('photo headers and EXIF', t))
    mdr, t = timed(lambda: infer.read_megadetector(md, images=images, unmatched='drop')); rows.append(('MegaDetector file', t))
    (crops, fails), t = timed(lambda: infer.cache_pictures(images, photos, mdr.detections, out/'cache', cfg, False)); rows.append(('resize and crop', t))
    full_it, crop_it = infer.prediction_items(images, crops, out/'cache', cfg)
    key = infer.checkpoint_key(models, images, cfg)
    secs = {}
    for n in (a.large, a.small):
        c = infer.InferConfig(checkpoint_every=n)
        probs, secs[n] = timed(lambda: infer.predict_checkpointed(learners, full_it, crop_it, tmp/f'ck_{n}', key, c, False))
    rows.append((f'predict with TTA, checkpoints of {a.large}', secs[a.large]))
    rows.append((f'predict with TTA, checkpoints of {a.small}', secs[a.small]))
    cats = infer.model_categories(learners['full'].meta)
    def answers():
        from iwildcam_nb.pipeline import answer_sequences, write_answers
        res = answer_sequences(images, mdr.detections, probs['full'], probs['crop'], crops, cats, cfg.ensemble, cfg.vote, cfg.count)
        return write_answers(out, images, mdr.detections, res, probs['crop'], cats, fails)
    _, t = timed(answers); rows.append(('answers and every output file', t))
    n = len(images)
    print(f'\n{n} photos ({images.width.iloc[0]}x{images.height.iloc[0]}), {len(crops)} crops, {a.arch} at 64 px, '
          f'OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}, preprocessing on {os.cpu_count()} cores')
    print(f'{"stage":<44}{"seconds":>9}{"photos/s":>10}')
    for name, t in rows: print(f'{name:<44}{t:>9.2f}{n/t:>10.1f}')
    total = sum(t for name, t in rows if f'checkpoints of {a.small}' not in name)
    print(f'{"all (large checkpoints)":<44}{total:>9.2f}{n/total:>10.1f}')
    print(f'\ncheckpoints of {a.small} vs {a.large} photos: {secs[a.small]/secs[a.large]:.2f}x the prediction time')

if __name__ == '__main__': main()
