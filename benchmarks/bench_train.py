"""Training and TTA images/s of the learners at the seed recipe's size, and the share of time spent outside the model.

Usage: python benchmarks/bench_train.py [--arch resnet50,tf_efficientnet_lite0] [--bs 32] [--size 128] [--batches 2]
                                        [--tta-batches 2] [--threads N] [--workers N]

Builds the embedded data set (`make_sample`) and its training frames resized to 256 px (`resize_images`) in a
temporary folder, removed at the end. The sample's labelled training frames (`training_items`) are repeated until the
training side holds warm-up + --batches full batches. For each --arch, a learner is made the way the library trains
the full-frame model (`make_dls`, `make_learner`, `fit_recipe`: the seed recipe of `RECIPES['full']`, i.e. 128 px
from 256 px frames, augmentation, MixUp 0.4, the fastai default number of DataLoader workers), with random weights
(speed does not depend on them; ResNet50's ImageNet weights would need a download), in batches of --bs. The seed
recipe's batches are 256, but on a shared 2-core CPU one such batch takes minutes with ResNet50, so the default is
32 and --batches 2 (the default run took 2.5 minutes here at load average 4, up to 6 when busier); `--bs 256`
measures the recipe's own (expect 15 minutes or more with both backbones). Then:

- train frozen / train unfrozen: `fit_recipe` runs its two one-cycle phases (body frozen, then everything), each
  stopped after 1 + --batches batches; the first batch of each (worker start-up, first allocations) is not counted.
- tta: `predict.tta_preds(learn, learn.dls.test_dl(...))` on --tta-batches batches of frames, as prediction runs it
  (fastai's `learn.tta` with the library's defaults: n=4 augmented passes plus the plain one, each a new pass over
  the DataLoader): images/s counts each frame once, and the whole call is timed (no warm-up: the model has run).
  Each pass starts the DataLoader's workers again, so with few batches that start-up weighs more in `input` than it
  would on a real test set: raise --tta-batches to see (lite0 at 1 thread: 3.0 images/s on 1 batch, 8.2 on 4).

A fastai callback (`BatchTimer`, last in order) stamps the time at every batch event, which splits the wall time into:

  fwd+bwd  the model: forward and loss (before_batch -> after_loss, after MixUp has mixed the batch)
           and backward (before_backward -> after_backward)
  outside  everything else, which is the sum of
    input  from the end of the previous batch to before_batch: the next batch from the DataLoader (decode, resize and
           collate in worker processes, or the wait for them), batch augmentation and normalization (in this
           process), MixUp and the learning-rate schedule
    step   optimizer step (before_step -> after_step)
    other  zero_grad, the loss/metric bookkeeping of Recorder, and (tta) starting the 5 passes and gathering outputs

The machine's load average is printed before and after, since other processes share the cores.
"""
import argparse, os, tempfile, time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
RESIZED = 256 # px, the resized frames the seed recipe trains from
N_TRAIN, N_TEST = 203_314, 60_214 # frames of the iWildCam 2021 training and test sets, for the verdict's estimate

def load()->str:
    "Load average over 1, 5 and 15 minutes, and the cores."
    from fastcore.parallel import num_cpus as n_cpus
    return '{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg()) + f' on {n_cpus()} cores'

def prepare(root:Path):
    "The embedded data set and its training frames resized to 256 px; returns the sample's tables and the frames folder."
    from iwildcam_nb.sample import make_sample, read_sample
    from iwildcam_nb.preprocess import resize_images
    data = make_sample(root/'data')
    rep = resize_images(data/'train', root/'resized', size=RESIZED, n_workers=0, show_progress=False)
    if (rep.status != 'done').any(): raise SystemExit(f'resize_images failed on some frames:\n{rep[rep.status != "done"].head()}')
    return read_sample(data), root/'resized'

def bench_items(s:dict, folder:Path, r, n_train:int, n_tta:int):
    "Labelled training items (training side repeated to >= `n_train`), `n_tta` frames for TTA, and the vocabulary."
    import pandas as pd
    from iwildcam_nb.models import training_items
    from iwildcam_nb.vocab import class_vocab
    vocab = class_vocab(s['categories'])
    items = training_items('full', s['images'], s['labels'], vocab, folder, r)
    items.attrs = {} # drop the skipped-files table that `check_files` keeps there: pandas cannot concat frames carrying it
    tr = items[~items.is_valid]
    reps = lambda n: pd.concat([tr] * -(-n // len(tr)), ignore_index=True)
    return pd.concat([reps(n_train), items[items.is_valid]], ignore_index=True), reps(n_tta).head(n_tta), vocab

def timer_cb(stop_after:int):
    "A `BatchTimer` callback that cancels each training run after `stop_after` batches."
    from fastai.callback.core import Callback, CancelFitException

    class BatchTimer(Callback):
        "Per batch: seconds of input, forward+loss, backward, step and in all, and its size; grouped in phases."
        order = 100 # last: its before_batch follows MixUp and the scheduler, its after_batch follows Recorder
        def __init__(self): self.phases, self.mark = {}, time.perf_counter()
        def new(self, label): self.batches = self.phases.setdefault(label, [])
        def _now(self): return time.perf_counter()
        def before_train(self): # not before_fit: `tta` and `get_preds` send that event too
            frozen = not all(p.requires_grad for p in self.learn.model.parameters())
            self.new('train frozen' if frozen else 'train unfrozen')
            self.mark = self._now()
        def before_validate(self): self.mark = self._now()
        def before_batch(self): t = self._now(); self.b = dict(input=t - self.mark, fwd=0., bwd=0., step=0.); self.t0 = t
        def after_loss(self): self.b['fwd'] = self._now() - self.t0
        def before_backward(self): self.t0 = self._now()
        def after_backward(self): self.b['bwd'] = self._now() - self.t0
        def before_step(self): self.t0 = self._now()
        def after_step(self): self.b['step'] = self._now() - self.t0
        def after_batch(self):
            t = self._now()
            self.batches.append(dict(self.b, total=t - self.mark, n=len(self.xb[0])))
            self.mark = t
            if self.training and len(self.batches) >= stop_after: raise CancelFitException()
    return BatchTimer()

def summarize(batches:list, wall:float|None=None)->dict:
    "Images/s and shares of the wall time; `wall` None: the batches' own total (contiguous batches)."
    tot = {k: sum(b[k] for b in batches) for k in ('input', 'fwd', 'bwd', 'step', 'total', 'n')}
    wall = tot['total'] if wall is None else wall
    share = {k: tot[k] / wall for k in ('input', 'fwd', 'bwd', 'step')}
    return dict(rate=tot['n'] / wall, secs=wall, n=tot['n'], model=share['fwd'] + share['bwd'],
                other=1 - sum(share.values()), **share)

def bench_arch(arch:str, s:dict, folder:Path, a)->dict:
    "Train both phases and run TTA with `arch`; the summary of each phase."
    from iwildcam_nb.models import get_recipe, make_dls, make_learner, fit_recipe
    from iwildcam_nb.predict import tta_preds
    r = get_recipe('full', arch=arch, pretrained=False, frozen_epochs=1, epochs=1,
                   **{k: v for k, v in dict(bs=a.bs, size=a.size, n_workers=a.workers).items() if v is not None})
    items, tta_items, vocab = bench_items(s, folder, r, (a.batches + 1) * r.bs, a.tta_batches * r.bs)
    learn = make_learner(make_dls(items, vocab, r), r)
    timer = timer_cb(a.batches + 1)
    learn.add_cb(timer)
    fit_recipe(learn, r, show_progress=False)
    out = {k: summarize(v[1:]) for k, v in timer.phases.items()} # the first batch of each phase is the warm-up
    timer.new('tta')
    dl = learn.dls.test_dl(tta_items)
    t = time.perf_counter(); preds = tta_preds(learn, dl, show_progress=False); wall = time.perf_counter() - t
    if preds.shape != (len(tta_items), len(vocab)): raise SystemExit(f'tta returned {tuple(preds.shape)}, expected {(len(tta_items), len(vocab))}')
    out['tta (4 aug + plain)'] = dict(summarize(timer.phases['tta'], wall), n=len(tta_items), rate=len(tta_items) / wall)
    return dict(bs=learn.dls.train.bs, size=r.size, workers=learn.dls.train.fake_l.num_workers, phases=out)

def pct(x:float)->str: return f'{100*x:5.1f}%'

def print_table(res:dict):
    "One row per arch and phase: batch size, images/s, and the wall-time shares."
    print(f'{"arch":<22} {"phase":<20} {"bs":>4} {"images":>6} {"secs":>6} {"images/s":>8}   {"fwd+bwd":>7} {"outside":>7} |'
          f' {"input":>6} {"step":>6} {"other":>6}')
    for arch, r in res.items():
        for ph, m in r['phases'].items():
            step = pct(m['step']) if ph.startswith('train') else '     -'
            print(f'{arch:<22} {ph:<20} {r["bs"]:>4} {m["n"]:>6} {m["secs"]:>6.1f} {m["rate"]:>8.1f}   {pct(m["model"]):>7} '
                  f'{pct(1 - m["model"]):>7} | {pct(m["input"]):>6} {step:>6} {pct(m["other"]):>6}')

def verdict(res:dict):
    "What the figures mean at iWildCam 2021 scale, with the seed recipe's epochs."
    from iwildcam_nb.models import RECIPES
    r = RECIPES['full']
    n_fit = N_TRAIN * (1 - r.valid_pct)
    for arch, x in res.items():
        ph = x['phases']
        if 'train frozen' not in ph or 'train unfrozen' not in ph: continue
        hours = (r.frozen_epochs * n_fit / ph['train frozen']['rate'] + r.epochs * n_fit / ph['train unfrozen']['rate']
                 + N_TEST / ph['tta (4 aug + plain)']['rate']) / 3600
        outside = max(ph.items(), key=lambda kv: 1 - kv[1]['model'])
        print(f'{arch} at bs {x["bs"]}: the seed recipe on iWildCam 2021 ({r.frozen_epochs}+{r.epochs} epochs over {n_fit:,.0f} frames, '
              f'validation not counted, TTA of {N_TEST:,} test frames) would take ~{hours:,.0f} h here; '
              f'most time outside the model: {outside[0]} ({pct(1 - outside[1]["model"]).strip()})')

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='resnet50,tf_efficientnet_lite0', help='comma-separated backbones (keys of backbones.BACKBONES)')
    p.add_argument('--bs', type=int, default=32, help="batch size (the seed recipe's is 256: slow here, see above)")
    p.add_argument('--size', type=int, default=None, help="training size in px; default the seed recipe's (128)")
    p.add_argument('--batches', type=int, default=2, help='timed training batches per phase, after one warm-up batch')
    p.add_argument('--tta-batches', type=int, default=2, help='batches of frames for TTA (each seen 5 times)')
    p.add_argument('--threads', type=int, default=None, help='torch threads; default all cores')
    p.add_argument('--workers', type=int, default=None, help="DataLoader worker processes; default the recipe's (fastai's default)")
    a = p.parse_args()
    if a.batches < 1 or a.tta_batches < 1: p.error('--batches and --tta-batches must be at least 1')
    import torch
    from fastcore.parallel import num_cpus as n_cpus
    from iwildcam_nb.backbones import get_backbone
    from iwildcam_nb.models import RECIPES
    archs = [o.strip() for o in a.arch.split(',') if o.strip()]
    for o in archs: # unknown names fail before any work
        try: get_backbone(o)
        except ValueError as e: p.error(str(e))
    torch.set_num_threads(a.threads or n_cpus())
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load()}')
    busy = os.getloadavg()[0] >= n_cpus() and torch.get_num_threads() > 1
    res = {}
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        s, folder = prepare(Path(d))
        print(f'embedded data set and its {(s["images"].split == "train").sum()} training frames at {RESIZED} px in {time.perf_counter() - t:.1f} s')
        for arch in archs: res[arch] = bench_arch(arch, s, folder, a)
    x = next(iter(res.values()))
    print(f'full frames at {x["size"]} px from {RESIZED} px frames, batches of {x["bs"]} (seed recipe: {RECIPES["full"].bs}), '
          f'random weights, DataLoader workers: {x["workers"]}; {a.batches} timed training batches per phase after 1 warm-up, '
          f'TTA on {a.tta_batches} batch(es)')
    print_table(res)
    print('fwd+bwd: forward and loss (before_batch -> after_loss) + backward (before_backward -> after_backward). '
          'outside = input + step + other: input = next batch from the DataLoader (decode/resize/collate in workers or the '
          'wait for them) + batch augmentation and normalization + MixUp + LR schedule; step = optimizer step; '
          'other = zero_grad, Recorder bookkeeping, (tta) starting passes and gathering outputs.')
    verdict(res)
    if busy: print('note: the cores were already busy (load average >= cores): several torch threads then wait for each other; compare --threads 1')
    print(f'load average after: {load()}')

if __name__ == '__main__': main()
