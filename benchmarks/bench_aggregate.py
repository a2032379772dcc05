"""Time the sequence vote, the counting rules and the submission files on an iWildCam-sized test set, and check they grow linearly.

Usage: python benchmarks/bench_aggregate.py [--scales 1,2,4] [--repeat 3] [--rule tracks,max_frame] [--vote majority,mean_prob]

At scale 1 the generated (seeded, vectorized) set has the shape of the iWildCam 2021 test set: 260k images in 60k
sequences of 1-10 frames at ~300 cameras, an image_preds table and a float32 probs table over a 200-class
vocabulary, 300k MegaDetector boxes, and the crops (boxes >= 0.3) with crop-model probs for the per-box species
rules. Scale k multiplies images, sequences, boxes and cameras by k. All sets are generated first (timed apart,
never counted), then each stage is timed alone, best of --repeat rounds in which the scales take turns (so that
load from other processes hits them alike): `decide_sequences` for each --vote rule (detector rules on),
`count_sequences` for each --rule, `submission_2021` and `submission_2020` (with `sequences_to_submit` and
`seq_pred_labels`), and `write_submission` of both. The pipeline total is the first vote + the first rule +
submissions + writes; its CPU time is also shown. Prints a table of seconds per stage and scale with
t(2x)/t(1x) and t(4x)/t(1x) (linear: about 2 and 4), and a verdict against the goal (< 10 s at scale 1). Holding
the 1x, 2x and 4x sets at once takes about 6-7 GB; 'peak GB over inputs' is what the stages add on top of their
input tables (resident memory sampled every 5 ms during a round, minus that before it). For memory at one scale
alone run e.g. `--scales 4`; benchmarks/bench_scale.py streams 10M photos through the same stages in chunks.
The stages run their per-sequence work in blocks of whole sequences (`iwildcam_nb.sequences.SEQ_BLOCK` rows,
`--seq-block` to change it); in the first round the smallest scale is also run unblocked and every output compared
with the blocked one (`--no-check-blocks` skips that). pandas 3 stores text columns with pyarrow when it is
installed, which changes the timings: `--strings python` (or `pyarrow`) fixes the storage, and the first line says
which one is used. `--int-ids` times the same sets with every text id replaced by an integer (the stages accept
either): the best case of moving the stages onto integer ids. `--primitives` times instead numpy's own building
blocks (a sum, a copy, a gather in random order, a bincount, a scatter-add, a radix argsort, filling fresh memory) on
as many rows as each scale has photos: how much of a stage's growth the machine's caches and pages give any code.
"""
import argparse, os, resource, tempfile, threading, time
from pathlib import Path
import numpy as np, pandas as pd

os.environ.setdefault('OMP_NUM_THREADS', '1')
BASE = dict(n_images=260_000, n_seqs=60_000, n_boxes=300_000, n_locs=300) # iWildCam 2021 test set, scale 1
N_CLASSES = 200 # vocabulary size (iWildCam 2021 trains on 205 categories)
EMPTY_SEQS, HUMAN_SEQS, VEHICLE_SEQS = .35, .03, .01 # fractions of sequences that are empty, people, vehicles

# ---------------------------------------------------------------- generation (vectorized, seeded, never timed)
def categories(rng, k:int=N_CLASSES)->pd.DataFrame:
    "A `k`-class categories table: 0 'empty', ids with gaps as in iWildCam, one human and one vehicle class."
    ids = np.r_[0, np.sort(rng.choice(np.arange(1, 700), k - 1, replace=False))]
    names = ['empty'] + [f'species {i}' for i in ids[1:]]
    names[1], names[2] = 'homo sapiens', 'vehicle'
    return pd.DataFrame({'category_id': ids, 'name': names, 'count': rng.integers(1, 5000, k)})

def seq_lengths(n_images:int, n_seqs:int, rng, max_len:int=10)->np.ndarray:
    "Sequence lengths in 1..max_len (Poisson around the mean) summing exactly to `n_images`."
    if not n_seqs <= n_images <= max_len*n_seqs: raise ValueError(f'{n_images} images do not fit {n_seqs} sequences of 1-{max_len}')
    lens = np.clip(rng.poisson(n_images/n_seqs - 1, n_seqs) + 1, 1, max_len)
    while (d := n_images - int(lens.sum())) != 0: # nudge random sequences by one frame until the total is exact
        ok = np.flatnonzero(lens < max_len if d > 0 else lens > 1)
        lens[rng.choice(ok, min(abs(d), len(ok)), replace=False)] += np.sign(d)
    return lens

def uuids(n:int, rng)->np.ndarray:
    "`n` distinct uuid-like ids (36 characters, as iWildCam's)."
    a = rng.integers(0, 2**48, (n, 2), dtype=np.int64)
    return np.array([f'{x >> 16:08x}-{x & 0xffff:04x}-11ea-{i & 0xffff:04x}-{y:012x}' for i, (x, y) in enumerate(a)], dtype=object)

def make_images(n_images:int, n_seqs:int, n_locs:int, rng)->pd.DataFrame:
    "The images table of a test set, rows shuffled (the test information is not grouped by sequence)."
    lens = seq_lengths(n_images, n_seqs, rng)
    s = np.repeat(np.arange(n_seqs), lens)
    frame = np.arange(n_images) - np.repeat(np.cumsum(lens) - lens, lens)
    t0 = np.datetime64('2013-01-01T00:00:00') + rng.integers(0, 6*365*86400, n_seqs).astype('timedelta64[s]')
    loc = rng.integers(0, n_locs, n_seqs)[s]
    iid, sid = uuids(n_images, rng), uuids(n_seqs, rng)
    im = pd.DataFrame({'image_id': iid, 'file_name': iid + '.jpg', 'width': 2048, 'height': 1536, 'location': loc,
                       'sub_location': np.where(loc % 50 == 0, loc % 2, np.nan), 'datetime': t0[s] + frame.astype('timedelta64[s]'),
                       'seq_id': sid[s], 'seq_num_frames': lens[s], 'frame_num': frame, 'split': 'test', '_seq': s})
    im = im.iloc[rng.permutation(n_images)].reset_index(drop=True)
    return im.assign(**{c: in_row_order(im[c]) for c in ('image_id', 'file_name', 'seq_id')})

def in_row_order(col:pd.Series)->np.ndarray:
    "The strings of `col` as new objects made in row order, as `read_csv` or `json.load` makes them (memory locality matters at 1M rows)."
    return np.array([x.encode().decode() for x in col], dtype=object)

def seq_truth(n_seqs:int, cats:pd.DataFrame, rng)->np.ndarray:
    "Each sequence's true class: empty, human, vehicle or a species from a long-tailed (Zipf-like) distribution."
    ids = cats.category_id.to_numpy()
    w = 1/np.arange(1, len(ids) - 2)**1.1
    sp = rng.choice(ids[3:], n_seqs, p=w/w.sum())
    kind = rng.choice(4, n_seqs, p=[EMPTY_SEQS, HUMAN_SEQS, VEHICLE_SEQS, 1 - EMPTY_SEQS - HUMAN_SEQS - VEHICLE_SEQS])
    return np.choose(kind, [np.zeros_like(sp), np.full_like(sp, ids[1]), np.full_like(sp, ids[2]), sp])

def peaked_probs(n:int, cols:np.ndarray, k:np.ndarray, rng)->np.ndarray:
    "float32 rows over `cols` summing to 1, each peaked (0.3-0.99 before normalizing) on column index `k`; one array, modified in place."
    a = rng.random((n, len(cols)), dtype=np.float32)
    a *= np.float32(.5/len(cols))
    a[np.arange(n), k] += rng.uniform(.3, .99, n).astype(np.float32)
    a /= a.sum(1, keepdims=True)
    return a

def noisy(true:np.ndarray, ids:np.ndarray, p_keep:float, p_empty:float, rng)->np.ndarray:
    "`true` labels kept with probability p_keep, else empty (p_empty) or a random class."
    u = rng.random(len(true))
    return np.where(u < p_keep, true, np.where(u < p_keep + p_empty, 0, rng.choice(ids, len(true))))

def make_probs(im:pd.DataFrame, truth:np.ndarray, cats:pd.DataFrame, rng)->tuple:
    "(probs per image_id, image_preds): the argmax of each probs row is the image's label."
    ids = cats.category_id.to_numpy()
    t = truth[im._seq.to_numpy()]
    lab = np.where(t == 0, noisy(t, ids, .9, 0, rng), noisy(t, ids, .75, .15, rng))
    a = peaked_probs(len(im), ids, np.searchsorted(ids, lab), rng)
    probs = pd.DataFrame(a, index=pd.Index(im.image_id.to_numpy(), name='image_id'), columns=list(ids), copy=False)
    preds = pd.DataFrame({'image_id': im.image_id.to_numpy(), 'seq_id': im.seq_id.to_numpy(), 'label': ids[a.argmax(1)],
                          'score': a.max(1).astype(float), 'source': 'ensemble'})
    return probs, preds

def rank_in_group(g:np.ndarray)->np.ndarray:
    "0, 1, 2... within runs of equal values of the sorted array `g`."
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    return np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))

def box_places(im:pd.DataFrame, i:np.ndarray, k:np.ndarray, rng, step:float=.03, spread:float=.15)->tuple:
    "(top-left xy, wh) of boxes on images `i`, k-th box of its image: each (sequence, k) an animal drifting `step` per frame."
    s, f = im._seq.to_numpy()[i], im.frame_num.to_numpy()[i]
    n = int(s.max()) + 1 if len(s) else 0
    start, size, way = rng.uniform(0, .6, (n, 2)), rng.uniform(.05, .25, n), rng.choice([-1, 1], n)
    wh = size[s][:, None]*rng.uniform(.9, 1.1, (len(i), 2))
    xy = start[s] + np.c_[way[s]*(step*f + spread*k), .05*k] + rng.normal(0, .01, (len(i), 2))
    return np.clip(xy, 0, 1 - wh), wh

def make_detections(im:pd.DataFrame, truth:np.ndarray, cats:pd.DataFrame, n_boxes:int, rng)->pd.DataFrame:
    "MegaDetector boxes, mostly on images of non-empty sequences; det_idx 0 is each image's most confident box."
    t = truth[im._seq.to_numpy()]
    w = np.where(t == 0, .1, 1.); i = rng.choice(len(im), n_boxes, p=w/w.sum())
    ti = t[i]; ids = cats.category_id.to_numpy()
    cat = np.where(ti == ids[1], 'person', np.where(ti == ids[2], 'vehicle', 'animal'))
    conf = np.where(ti == 0, rng.beta(1, 4, n_boxes), rng.beta(5, 1.5, n_boxes)).round(3)
    o = np.lexsort((-conf, i)); i, cat, conf = i[o], cat[o], conf[o]
    k = rank_in_group(i); xy, wh = box_places(im, i, k, rng)
    iid = im.image_id.to_numpy()[i]
    return pd.DataFrame({'image_id': iid, 'det_idx': k, 'category': cat, 'conf': conf,
                         'x': xy[:, 0], 'y': xy[:, 1], 'w': wh[:, 0], 'h': wh[:, 1], 'file': im.file_name.to_numpy()[i]})

def make_crops(dets:pd.DataFrame, im:pd.DataFrame, truth:np.ndarray, cats:pd.DataFrame, rng, conf:float=.3)->tuple:
    "(crops table, crop probs per crop_id) for the boxes at or above `conf`; crops mostly show the sequence's class."
    c = dets[dets.conf >= conf].reset_index(drop=True)
    c.insert(0, 'crop_id', c.image_id + '_' + c.det_idx.astype(str).str.zfill(3))
    c = c.assign(path='test/' + c.crop_id + '.jpg', note='')
    seq = pd.Series(im._seq.to_numpy(), index=im.image_id.to_numpy()).reindex(c.image_id).to_numpy()
    ids = cats.category_id.to_numpy()
    lab = noisy(truth[seq], ids, .8, .05, rng)
    a = peaked_probs(len(c), ids, np.searchsorted(ids, lab), rng)
    return c, pd.DataFrame(a, index=pd.Index(c.crop_id.to_numpy(), name='crop_id'), columns=list(ids), copy=False)

def integer_ids(d:dict)->dict:
    "Set `d` with every text id (image, sequence, crop) replaced by a 62-bit integer from Python's `hash`: the best case of integer ids."
    code = lambda a: np.fromiter((hash(x) & ((1 << 62) - 1) for x in np.asarray(a, dtype=object)), np.int64, len(a))
    im, pr, c = d['images'], d['preds'], d['crops']
    return dict(d, images=im.assign(image_id=code(im.image_id), seq_id=code(im.seq_id)),
                probs=d['probs'].set_axis(pd.Index(code(d['probs'].index), name='image_id')),
                preds=pr.assign(image_id=code(pr.image_id), seq_id=code(pr.seq_id)), dets=d['dets'].assign(image_id=code(d['dets'].image_id)),
                crops=c.assign(image_id=code(c.image_id), crop_id=code(c.crop_id)),
                crop_probs=d['crop_probs'].set_axis(pd.Index(code(d['crop_probs'].index), name='crop_id')))

def make_set(scale:float, seed:int=0)->dict:
    "The whole test set at `scale` times the iWildCam 2021 test set: tables keyed as `predict_sequences` names them."
    rng = np.random.default_rng(seed)
    n = {k: max(1, round(v*scale)) for k, v in BASE.items()}
    cats = categories(rng)
    im = make_images(n['n_images'], n['n_seqs'], n['n_locs'], rng)
    truth = seq_truth(n['n_seqs'], cats, rng)
    probs, preds = make_probs(im, truth, cats, rng)
    dets = make_detections(im, truth, cats, n['n_boxes'], rng)
    crops, crop_probs = make_crops(dets, im, truth, cats, rng)
    return dict(images=im.drop(columns='_seq'), categories=cats, probs=probs, preds=preds, dets=dets, crops=crops, crop_probs=crop_probs)

# ---------------------------------------------------------------- timed stages
def rss_gb()->float:
    "Resident memory of this process now, in GB (Linux /proc)."
    with open('/proc/self/statm') as f: return int(f.read().split()[1])*os.sysconf('SC_PAGE_SIZE')/2**30

class PeakRSS:
    "Sample the resident memory every `every` seconds in a thread; `.peak` is the largest seen (GB)."
    def __init__(self, every:float=.005): self.every, self.peak, self._stop = every, rss_gb(), threading.Event()
    def _run(self):
        while not self._stop.wait(self.every): self.peak = max(self.peak, rss_gb())
    def __enter__(self): self._t = threading.Thread(target=self._run, daemon=True); self._t.start(); return self
    def __exit__(self, *a): self._stop.set(); self._t.join(); self.peak = max(self.peak, rss_gb())

def timed(fn)->tuple:
    "(wall seconds, CPU seconds of this process, result) of one call of `fn`."
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out

def run_stages(d:dict, votes:list, rules:list, out:Path|None)->tuple:
    "One round: ({stage: (wall s, CPU s)}, the stages' outputs by stage name) on set `d`; no writes if `out` is None."
    from iwildcam_nb.sequences import VoteConfig, decide_sequences
    from iwildcam_nb.counts import CountConfig, count_sequences
    from iwildcam_nb.metrics import sequences_to_submit, submission_2021, submission_2020, seq_pred_labels, write_submission
    from iwildcam_nb.vocab import class_vocab
    t, res = {}, {}
    def run(k, fn): *t[k], res[k] = timed(fn); return res[k]
    for v in votes:
        run(f'vote:{v}', lambda: decide_sequences(d['preds'], d['dets'], d['images'], d['categories'], d['probs'], VoteConfig(rule=v)))
    for r in rules:
        run(f'count:{r}', lambda: count_sequences(res[f'vote:{votes[0]}'], d['dets'], d['images'], d['categories'], d['crop_probs'], d['crops'], CountConfig(rule=r)))
    species, sp = class_vocab(d['categories']), res[f'count:{rules[0]}']
    s21 = run('submission 2021', lambda: submission_2021(sp, sequences_to_submit(d['images']), species))
    s20 = run('submission 2020', lambda: submission_2020(seq_pred_labels(sp), d['images']))
    if out is not None:
        run('write 2021', lambda: write_submission(s21, out/'submission_2021.csv'))
        run('write 2020', lambda: write_submission(s20, out/'submission_2020.csv'))
    return t, res

def same_as_unblocked(d:dict, votes:list, rules:list)->str:
    "Stop unless every stage's output on `d` is the same with blocks of `SEQ_BLOCK` rows and without blocks."
    import iwildcam_nb.sequences as S
    from unittest import mock
    blocked = run_stages(d, votes, rules, None)[1]
    with mock.patch.object(S, 'SEQ_BLOCK', 1 << 62): whole = run_stages(d, votes, rules, None)[1]
    for k, v in blocked.items():
        try: pd.testing.assert_frame_equal(v, whole[k], check_exact=True)
        except AssertionError as e: raise SystemExit(f'{k}: blocked and unblocked outputs differ: {e}') from None
    return (f'outputs with blocks of {S.SEQ_BLOCK:,} rows ({-(-len(d["images"])//S.SEQ_BLOCK)} blocks of photos) '
            f'identical to unblocked for {", ".join(blocked)}')

def check_output(sp:pd.DataFrame, d:dict):
    "Stop unless seq_preds covers every sequence once per category, with counts >= 0 and empty sequences (0, 0)."
    n = d['images'].seq_id.nunique()
    e = sp[sp.category_id == 0]
    problems = [(sp.seq_id.nunique() != n, f'{sp.seq_id.nunique()} sequences in seq_preds, {n} in the images'),
                (sp.duplicated(['seq_id', 'category_id']).any(), 'a (seq_id, category_id) row twice'),
                ((sp['count'] < 0).any(), 'a negative count'),
                ((e['count'] != 0).any() or sp.seq_id.isin(e.seq_id).sum() != len(e), 'an empty sequence with a count or a second row')]
    bad = [m for b, m in problems if b]
    if bad: raise SystemExit(f'wrong seq_preds: {"; ".join(bad)}')

def totals(t:dict, votes:list, rules:list)->tuple:
    "(pipeline total: first vote + first rule + submissions + writes, the same with the slowest vote and rule)."
    rest = sum(v for k, v in t.items() if not k.startswith(('vote:', 'count:')))
    worst = max(t[f'vote:{v}'] for v in votes) + max(t[f'count:{r}'] for r in rules) + rest
    return t[f'vote:{votes[0]}'] + t[f'count:{rules[0]}'] + rest, worst

# ---------------------------------------------------------------- report
def print_table(res:dict, scales:list, label:str='stage', unit:str='s', width:int=22, digits:int=2):
    "Times per row (stages or primitives) and scale (columns), then t(k)/t(first scale) for the others."
    s0, rows = scales[0], list(next(iter(res.values())).keys())
    head = f'{label:<{width}}' + ''.join(f'{f"{s:g}x ({unit})":>10}' for s in scales) + ''.join(f'{f"{s:g}x/{s0:g}x":>10}' for s in scales[1:])
    print(head); print('-'*len(head))
    for r in rows:
        if r in ('total', 'peak GB over inputs'): print('-'*len(head))
        print(f'{r:<{width}}' + ''.join(f'{res[s][r]:10.{digits}f}' for s in scales) + ''.join(f'{res[s][r]/max(res[s0][r], 1e-9):10.2f}' for s in scales[1:]))

def growth_line(res:dict, scales:list, key:str='total')->str:
    "How the total grows with the scale, compared with linear growth."
    s0, s1 = scales[0], scales[-1]
    if s1 == s0: return 'growth: one scale only'
    k, r = s1/s0, res[s1][key]/res[s0][key]
    verdict = 'linear' if r <= 1.25*k else 'worse than linear'
    return f'growth: {key} {s1:g}x/{s0:g}x = {r:.2f} (linear: {k:g}; limit {1.25*k:g}): {verdict}'

def load()->str:
    "The 1-minute load average against the cores (the machine is shared)."
    return f'load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores'

def _has_arrow()->bool:
    "Whether pyarrow can be imported (then pandas 3 stores text columns with it unless told otherwise)."
    import importlib.util
    return importlib.util.find_spec('pyarrow') is not None

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--scales', default='1,2,4', help='comma-separated multiples of the iWildCam 2021 test set')
    p.add_argument('--repeat', type=int, default=3, help='each stage is timed this many times; the best is kept')
    p.add_argument('--rule', default='tracks,max_frame', help="count rules to time, comma-separated, or 'all'; the first one is the pipeline's")
    p.add_argument('--vote', default='majority,mean_prob', help="vote rules to time, comma-separated; the first one is the pipeline's")
    p.add_argument('--fraction', type=float, default=1.0, help='size of scale 1 as a fraction of the iWildCam 2021 test set (tests use 0.01)')
    p.add_argument('--goal', type=float, default=10.0, help='seconds allowed for the pipeline at scale 1')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--strings', choices=('auto', 'python', 'pyarrow'), default='auto',
                   help="pandas' storage of text columns (pandas 3 picks pyarrow when it is installed): 'auto' keeps that")
    p.add_argument('--seq-block', type=int, default=None,
                   help='rows per block of whole sequences in the stages (iwildcam_nb.sequences.SEQ_BLOCK); default: the package\'s')
    p.add_argument('--int-ids', action='store_true',
                   help='replace every text id by an integer before timing: what a refactor onto integer ids could gain at best')
    p.add_argument('--primitives', action='store_true',
                   help="time only numpy's building blocks (gathers, bincount, fresh memory) on each scale's number of rows: the machine's own growth")
    p.add_argument('--no-check-blocks', dest='check_blocks', action='store_false',
                   help='skip comparing the blocked stages with unblocked ones at the smallest scale')
    a = p.parse_args()
    if a.strings != 'auto': pd.set_option('mode.string_storage', a.strings)
    if a.seq_block is not None:
        import iwildcam_nb.sequences
        iwildcam_nb.sequences.SEQ_BLOCK = a.seq_block
    from iwildcam_nb.sequences import VOTE_RULES
    from iwildcam_nb.counts import COUNT_RULES, CountConfig
    a.scales = [float(s) for s in a.scales.split(',')]
    first = CountConfig().rule # 'all': the default rule first, so that the pipeline is the default one
    a.rules = [first, *(r for r in COUNT_RULES if r != first)] if a.rule == 'all' else a.rule.split(',')
    a.votes = a.vote.split(',')
    for x, ok in [*((r, COUNT_RULES) for r in a.rules), *((v, VOTE_RULES) for v in a.votes)]:
        if x not in ok: p.error(f'{x!r} is not one of {ok}')
    return a

def generate(scales:list, fraction:float, seed:int, int_ids:bool=False)->dict:
    "The set of each scale, generated before any timing (so that the scales can take turns under the same load)."
    sets = {}
    for s in scales:
        t0 = time.perf_counter()
        d = sets[s] = integer_ids(make_set(s*fraction, seed)) if int_ids else make_set(s*fraction, seed)
        mb = (d['probs'].memory_usage().sum() + d['crop_probs'].memory_usage().sum())/1e6
        print(f'{s:g}x: generated {len(d["images"]):,} images / {d["images"].seq_id.nunique():,} sequences / {len(d["dets"]):,} boxes / '
              f'{len(d["crops"]):,} crops, {d["probs"].shape[1]} classes ({mb:,.0f} MB of probs) in {time.perf_counter() - t0:.1f} s (not counted)', flush=True)
    return sets

def bench(sets:dict, a)->dict:
    "Best wall seconds per stage and scale over `a.repeat` rounds; in each round every scale runs once, in turn; totals added."
    best, extra = {s: {} for s in sets}, {s: 0. for s in sets}
    for i in range(a.repeat):
        for s, d in sets.items():
            base = rss_gb() # the sets themselves: what the stages add comes on top
            with tempfile.TemporaryDirectory() as out, PeakRSS() as pk: t, res = run_stages(d, a.votes, a.rules, Path(out))
            extra[s] = max(extra[s], pk.peak - base)
            if i == 0: check_output(res[f'count:{a.rules[0]}'], d)
            if i == 0 and s == min(sets) and a.check_blocks: print(same_as_unblocked(d, a.votes, a.rules), flush=True)
            for k, (w, c) in t.items(): best[s][k] = min(best[s].get(k, (w, c)), (w, c))
            print(f'round {i + 1}, {s:g}x: pipeline {totals({k: w for k, (w, c) in t.items()}, a.votes, a.rules)[0]:.2f} s; {load()}', flush=True)
    res = {}
    for s, b in best.items():
        w, c = {k: v[0] for k, v in b.items()}, {k: v[1] for k, v in b.items()}
        res[s] = {**w, 'total': totals(w, a.votes, a.rules)[0], 'total, slowest rules': totals(w, a.votes, a.rules)[1],
                  'total, CPU s': totals(c, a.votes, a.rules)[0], 'peak GB over inputs': extra[s]}
    return res

def primitive_growth(scales:list, fraction:float=1.0, repeat:int=7)->dict:
    "{scale: {primitive: ms}}: numpy's own building blocks timed on as many rows as the photos of each scale."
    n0, rng = BASE['n_images']*fraction, np.random.default_rng(0)
    ops = {'sum (sequential read)': lambda a, i, c, p: a.sum(), 'copy': lambda a, i, c, p: a.copy(),
           'gather in random order': lambda a, i, c, p: a[i], 'bincount of codes': lambda a, i, c, p: np.bincount(c),
           'scatter-add (np.add.at)': lambda a, i, c, p: np.add.at(np.zeros(len(a)//4 + 1), c, a),
           'radix argsort, int16': lambda a, i, c, p: np.argsort(p, kind='stable'),
           'fill fresh memory (25 B/row)': lambda a, i, c, p: np.zeros(len(a)*25)[::512].fill(1)}
    res = {}
    for s in scales:
        n = max(1, round(n0*s))
        args = rng.random(n), rng.permutation(n), rng.integers(0, n//4 + 1, n), rng.integers(0, 64, n).astype(np.int16)
        res[s] = {k: 1e3*min(timed(lambda: f(*args))[0] for _ in range(repeat)) for k, f in ops.items()}
    return res

def main():
    a = parse_args()
    if a.primitives: return print_table(primitive_growth(a.scales, a.fraction), a.scales, 'numpy primitive', 'ms', 30, 3)
    from iwildcam_nb.sequences import SEQ_BLOCK
    print(f'{load()} before generating; text columns stored by {pd.options.mode.string_storage!r} '
          f'(pyarrow installed: {_has_arrow()}); SEQ_BLOCK {SEQ_BLOCK:,}', flush=True)
    sets = generate(a.scales, a.fraction, a.seed, a.int_ids)
    res = bench(sets, a); del sets
    print(f'\nbest of {a.repeat} rounds (the scales take turns in each round; seq_preds checked); wall seconds;\n'
          f'pipeline = vote:{a.votes[0]} + count:{a.rules[0]} + submissions + writes; "slowest rules": slowest vote + slowest count + the rest;\n'
          f'"CPU s": CPU time of this process for the pipeline (less sensitive to the other processes on the machine)\n')
    print_table(res, a.scales)
    print(); print(growth_line(res, a.scales)); print(growth_line(res, a.scales, 'total, CPU s'))
    print(f'peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20:.1f} GB; {load()}')
    if 1.0 in res and a.fraction != 1: print(f'(scale 1 is {a.fraction:g} of the iWildCam 2021 test set: no verdict against the goal)')
    elif 1.0 in res:
        tot, worst = res[1.0]['total'], res[1.0]['total, slowest rules']
        print(f'(slowest rules at 1x: {worst:.2f} s: {"met" if worst < a.goal else "missed"})')
        print(f'total at 1x: {tot:.2f} s (goal < {a.goal:g} s): {"met" if tot < a.goal else "missed"}')

if __name__ == '__main__': main()
