"""Images per second of the resize stage against a naive Pillow loop, on the same real full-size frames.

Usage: python benchmarks/bench_preprocess.py [FRAMES_DIR] [--size 256] [--repeat 3] [--crops]

FRAMES_DIR defaults to ../shared/data/fullres_cct (39 iWildCam frames of 2048x1494). Prints images/s for
(a) naive Pillow on one core (open, convert RGB, resize, save), (b) `resize_images` on one core,
(c) `resize_images` on all cores, and the ratios b/a and c/a. Each figure is the best of --repeat runs,
each into a fresh temporary folder. With --crops it also times `make_crops` on made-up boxes.
"""
import argparse, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent/'shared'/'data'/'fullres_cct'

def naive(files, dst, size, quality):
    "The loop a first attempt would write: full decode, resize, save."
    from PIL import Image
    for f in files:
        im = Image.open(f).convert('RGB')
        r = size / max(im.size)
        im.resize((round(im.width*r), round(im.height*r))).save(dst/f.name, quality=quality)

def best_rates(fns:dict, n, repeat):
    """Best images/s of each `fn(dst)` in `fns` over `repeat` rounds, each run into a fresh temporary folder.
    The methods take turns within a round, so that load from other processes hits them alike."""
    best = dict.fromkeys(fns, float('inf'))
    for _ in range(repeat):
        for k, fn in fns.items():
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter(); fn(Path(d)); best[k] = min(best[k], time.perf_counter() - t)
    return {k: n/v for k, v in best.items()}

def fake_dets(files, rng):
    "Three boxes of assorted sizes per frame, like MegaDetector output on a busy camera."
    import pandas as pd
    rows = []
    for f in files:
        for j in range(3):
            w, h = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4)
            rows.append(dict(image_id=f.stem, det_idx=j, category='animal', conf=0.9 - j/10,
                             x=rng.uniform(0, 1-w), y=rng.uniform(0, 1-h), w=w, h=h, file=f.name))
    return pd.DataFrame(rows)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('frames', nargs='?', default=str(DEFAULT), help='folder of full-size JPEG frames')
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--quality', type=int, default=90)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--crops', action='store_true', help='also time make_crops (3 boxes per frame, 128 px)')
    a = p.parse_args()
    src = Path(a.frames)
    files = sorted(o for o in src.glob('*') if o.suffix.lower() in ('.jpg', '.jpeg')) if src.is_dir() else []
    if not files: sys.exit(f'no JPEG frames in {src}: pass a folder of full-size frames (../shared/data/fullres_cct)')
    from iwildcam_nb.preprocess import resize_images, make_crops, n_cpus
    n, kw = len(files), dict(size=a.size, quality=a.quality, show_progress=False)
    print(f'{n} frames from {src}, {a.size} px, best of {a.repeat}, {n_cpus()} cores')
    r = best_rates(dict(
        a=lambda d: naive(files, d, a.size, a.quality),
        b=lambda d: resize_images(src, d, n_workers=0, **kw),
        c=lambda d: resize_images(src, d, n_workers=None, **kw),
        b2=lambda d: resize_images(src, d, n_workers=0, draft_gap=2, **kw)), n, a.repeat)
    print(f'(a) naive Pillow, 1 core      {r["a"]:7.1f} images/s')
    print(f'(b) resize_images, 1 core     {r["b"]:7.1f} images/s   b/a = {r["b"]/r["a"]:.1f}x')
    print(f'(c) resize_images, all cores  {r["c"]:7.1f} images/s   c/a = {r["c"]/r["a"]:.1f}x')
    print(f'    (b with draft_gap=2, sharper: {r["b2"]:.1f} images/s, {r["b2"]/r["a"]:.1f}x)')
    if a.crops:
        import numpy as np
        dets = fake_dets(files, np.random.default_rng(0))
        r = best_rates({'1 core': lambda d: make_crops(dets, src, d, size=128, n_workers=0, show_progress=False),
                        'all cores': lambda d: make_crops(dets, src, d, size=128, show_progress=False)}, n, a.repeat)
        for k, v in r.items(): print(f'make_crops, {k}: {v:7.1f} frames/s ({3*v:.0f} crops/s of 128 px)')

if __name__ == '__main__': main()
