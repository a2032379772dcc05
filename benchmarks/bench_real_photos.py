"""Real photos, k-fold: every training strategy and backbone of the package beside the practitioner's baseline.

Usage: python benchmarks/bench_real_photos.py [--photos DIR] [--folds 3] [--archs tf_efficientnet_lite0,...]
                                              [--methods quick,head,finetune,old_quick] [--out CSV] [--confusion PNG]

DIR holds photos and a `labels.csv` whose first column is the file name (relative to DIR) and which has a `label`
column; the default is the 21 real ENA24 photos in tests/data/real/ena24 (7 species, 3 each). Fold k holds out the
k-th photo of every species, so each fold trains on the others and tests on one photo per species (with 3 photos per
species: 2 to train, 1 to test, as the issue's Serengeti set). Photos are resized once to 256 px on the longest side,
as `iwildcam-nb run` does before training (not timed, shared by every method), and each photo is its own location.

Methods, each trained from scratch on every fold (no feature cache carried between folds or methods):
  baseline   frozen ImageNet features (`backbones.embed_images`, average-pooled, the whole frame squished to the backbone's
             native size) and scikit-learn's LogisticRegression: what a practitioner tries first
  quick      what `iwildcam-nb train --quick` and `run --quick` do: `models.train` with `QUICK['full']` at the
             backbone's native size, strategy 'auto' (here: the head on cached frozen features, a linear head)
  head       the head strategy with fastai's default head (512 hidden units) instead of a linear one
  finetune   the strategy 'finetune' at the native size: 3 frozen + 6 unfrozen epochs with augmentation
  old_quick  the quick recipe before this benchmark: 64 px, fine-tuned (3 + 6 epochs)
Scored on the held-out photo of every species: top-1 and top-5 accuracy (pooled over folds), seconds to train
(everything from files to a trained model: building the network, loading weights, features, fitting) and to predict
(plain, no TTA). `train/base` is each method's training time over the baseline's, for the same backbone.
"""
import argparse, os, tempfile, time, warnings, logging
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
ROOT = Path(__file__).resolve().parent.parent
METHODS = ('baseline', 'quick', 'head', 'finetune', 'old_quick')

def photo_table(folder:Path):
    "file, label and fold-free class index of every labelled photo in `folder`."
    import pandas as pd
    lab = pd.read_csv(folder/'labels.csv')
    df = pd.DataFrame({'file': lab.iloc[:, 0].astype(str), 'label': lab['label'].astype(str)})
    names = sorted(df.label.unique())
    return df.assign(category_id=df.label.map(names.index) + 1), names

def tables(df):
    "images, labels and categories tables (the data layer's shapes) of the photos in `df`; each photo its own location."
    import pandas as pd
    ids = df.file.str.rsplit('.', n=1).str[0]
    images = pd.DataFrame({'image_id': ids, 'file_name': df.file, 'location': ids})
    return images, pd.DataFrame({'image_id': ids, 'category_id': df.category_id})

def topk(probs, y, k):
    "Share of rows whose true column is among the `k` most probable."
    import numpy as np
    order = np.argsort(-probs, 1)[:, :k]
    return float((order == y[:, None]).any(1).mean())

def run_baseline(arch, size, folder, tr, te, vocab):
    "LogisticRegression on frozen features; (probabilities of the test photos over `vocab`, train s, predict s)."
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from iwildcam_nb.backbones import embed_images
    t0 = time.perf_counter()
    m = LogisticRegression(max_iter=2000).fit(embed_images([folder/f for f in tr.file], arch, size), tr.category_id)
    t1 = time.perf_counter()
    p = m.predict_proba(embed_images([folder/f for f in te.file], arch, size))
    t2 = time.perf_counter()
    out = np.zeros((len(te), len(vocab)))
    out[:, [vocab.index(c) for c in m.classes_]] = p
    return out, t1 - t0, t2 - t1

def recipe(method, arch, size):
    "The recipe fields a package method trains with."
    from iwildcam_nb.models import QUICK, get_recipe
    r = get_recipe('full', QUICK['full'], arch=arch, size=size)
    return {'quick': r, 'head': get_recipe('full', r, strategy='head', head_hidden=512),
            'finetune': get_recipe('full', r, strategy='finetune'),
            'old_quick': get_recipe('full', r, size=64, strategy='finetune', head_hidden=512)}[method]

def run_package(method, arch, size, folder, tr, te, categories, work:Path):
    "Train with `models.train` and predict with `predict.model_probs`; (test probabilities, train s, predict s, fit_info)."
    from iwildcam_nb.models import train
    from iwildcam_nb.predict import model_probs
    from iwildcam_nb.core import read_json
    images, labels = tables(tr)
    t0 = time.perf_counter()
    path = train('full', images, labels, categories, folder, work, recipe(method, arch, size), show_progress=False)
    t1 = time.perf_counter()
    probs = model_probs(path, folder, images=tables(te)[0], tta=False, show_progress=False)
    t2 = time.perf_counter()
    info = read_json(path.with_suffix('.json'))
    return probs.loc[tables(te)[0].image_id].to_numpy(), t1 - t0, t2 - t1, info

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--photos', default=str(ROOT/'tests'/'data'/'real'/'ena24'))
    p.add_argument('--folds', type=int, default=3)
    p.add_argument('--archs', default='tf_efficientnet_lite0')
    p.add_argument('--methods', default='baseline,quick,head,finetune,old_quick')
    p.add_argument('--out', default=None, help='CSV for the table (default: none)')
    p.add_argument('--confusion', default=None, help="PNG of the quick method's confusion matrix (first backbone)")
    a = p.parse_args()
    warnings.filterwarnings('ignore'); logging.getLogger('iwildcam_nb').setLevel(logging.ERROR)
    import numpy as np, pandas as pd, torch
    from iwildcam_nb.preprocess import resize_images
    from iwildcam_nb.backbones import get_backbone
    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))
    methods = a.methods.split(',')
    unknown = set(methods) - set(METHODS)
    if unknown: raise SystemExit(f'unknown methods {unknown}: choose from {METHODS}')
    src = Path(a.photos)
    df, names = photo_table(src)
    df = df.assign(fold=df.groupby('label').cumcount() % a.folds)
    vocab = list(range(1, len(names) + 1))
    categories = pd.DataFrame({'category_id': vocab, 'name': names})
    print(f'{len(df)} photos, {len(names)} classes, {a.folds} folds, load {os.getloadavg()[0]:.1f}, {os.environ["OMP_NUM_THREADS"]} thread(s)')
    rows, conf = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)/'resized'
        resize_images(src, folder, size=256, files=df.file.tolist(), n_workers=0, show_progress=False)
        for arch in a.archs.split(','):
            size = get_backbone(arch).native_size
            for method in methods:
                P, secs, info = [], [0., 0.], None
                for k in range(a.folds):
                    tr, te = df[df.fold != k], df[df.fold == k]
                    if method == 'baseline': pr, ts, ps = run_baseline(arch, size, folder, tr, te, vocab)
                    else: pr, ts, ps, info = run_package(method, arch, size, folder, tr, te, categories, Path(tmp)/f'{arch}-{method}-{k}')
                    P.append(pr); secs[0] += ts; secs[1] += ps
                probs, y = np.concatenate(P), np.concatenate([df[df.fold == k].category_id.to_numpy() - 1 for k in range(a.folds)])
                conf[(arch, method)] = (y, probs.argmax(1))
                rows.append({'backbone': arch, 'size': recipe(method, arch, size).size if method != 'baseline' else size,
                             'method': method, 'strategy': info['strategy'] if info else 'logistic regression',
                             'top1': topk(probs, y, 1), 'top5': topk(probs, y, 5), 'train_s': secs[0], 'predict_s': secs[1]})
                print(f"  {arch} {method}: top-1 {rows[-1]['top1']:.3f}, train {secs[0]:.1f} s", flush=True)
    t = pd.DataFrame(rows)
    base = t[t.method == 'baseline'].set_index('backbone').train_s
    t['train/base'] = t.train_s / t.backbone.map(base) if len(base) else np.nan
    print(f'\n{t.to_string(index=False, float_format="%.3f")}\n\nchance: top-1 {1/len(names):.3f}, top-5 {min(1, 5/len(names)):.3f}; '
          f'load average after: {os.getloadavg()[0]:.1f}')
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); t.to_csv(a.out, index=False, float_format='%.4f')
    if a.confusion and (a.archs.split(',')[0], 'quick') in conf: draw_confusion(*conf[(a.archs.split(',')[0], 'quick')], names, a.confusion)

def draw_confusion(y, pred, names, dest):
    "Confusion matrix of the quick method, pooled over folds, as a PNG."
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt, numpy as np
    m = np.zeros((len(names),)*2, int)
    for t, q in zip(y, pred): m[t, q] += 1
    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=80)
    ax.imshow(m, cmap='Blues')
    for (i, j), v in np.ndenumerate(m):
        if v: ax.text(j, i, v, ha='center', va='center', fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=60, ha='right', fontsize=7); ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel('predicted'); ax.set_ylabel('true'); ax.set_title('train --quick, held-out photos', fontsize=9)
    fig.tight_layout(); fig.savefig(dest); plt.close(fig)

if __name__ == '__main__': main()
