"""Stream many simulated photos through the aggregation (vote, count, both submissions) in chunks: peak memory and seconds per million.

Usage: python benchmarks/bench_scale.py [--photos 10_000_000] [--chunk 260_000] [--out DIR]

Each chunk is an iWildCam-2021-shaped test set from `bench_aggregate.make_set` (its own seed: other sequences,
cameras and ids), the way a large collection is processed camera by camera or block by block: no sequence spans
two chunks. Every chunk is decided (`decide_sequences`, majority vote + detector rules), counted
(`count_sequences`, tracks) and turned into both Kaggle submissions, whose rows are appended to one 2021 and one
2020 CSV (one header each), so the files grow with the collection while memory stays that of one chunk.
Generation is timed apart and never counted. Prints seconds per chunk, seconds per million photos (aggregation
only) and the process's peak resident memory; the last chunks' rate against the first ones shows whether the
work per photo stays flat as the outputs grow.
"""
import argparse, os, resource, shutil, tempfile, time
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
import pandas as pd
from bench_aggregate import BASE, make_set, rss_gb

def aggregate(d:dict, out:Path, first:bool)->tuple:
    "(seconds, CPU seconds) to decide, count and submit one chunk `d`, appending its rows to out/submission_*.csv."
    from iwildcam_nb.sequences import decide_sequences
    from iwildcam_nb.counts import count_sequences
    from iwildcam_nb.metrics import sequences_to_submit, submission_2021, submission_2020, seq_pred_labels, write_submission
    from iwildcam_nb.vocab import class_vocab
    w, c = time.perf_counter(), time.process_time()
    seq = decide_sequences(d['preds'], d['dets'], d['images'], d['categories'], d['probs'])
    sp = count_sequences(seq, d['dets'], d['images'], d['categories'], d['crop_probs'], d['crops'])
    subs = {'2021': submission_2021(sp, sequences_to_submit(d['images']), class_vocab(d['categories'])),
            '2020': submission_2020(seq_pred_labels(sp), d['images'])}
    for k, s in subs.items(): # each chunk checked and written as a whole file, then appended without its header
        part = write_submission(s, out/f'part_{k}.csv')
        with open(part, 'rb') as src, open(out/f'submission_{k}.csv', 'ab') as dst:
            head = src.readline()
            if first: dst.write(head)
            shutil.copyfileobj(src, dst)
    return time.perf_counter() - w, time.process_time() - c

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--photos', type=int, default=10_000_000, help='photos in all')
    p.add_argument('--chunk', type=int, default=BASE['n_images'], help='photos per chunk (a multiple of the 2021 test set shape)')
    p.add_argument('--out', default=None, help='folder for the two submission files (default: a temporary one, removed)')
    p.add_argument('--strings', choices=('auto', 'python', 'pyarrow'), default='auto',
                   help="pandas' storage of text columns (pandas 3 picks pyarrow when it is installed): 'auto' keeps that")
    a = p.parse_args()
    if a.strings != 'auto': pd.set_option('mode.string_storage', a.strings)
    from iwildcam_nb.sequences import SEQ_BLOCK
    out = Path(a.out or tempfile.mkdtemp(prefix='bench_scale_')); out.mkdir(parents=True, exist_ok=True)
    for f in out.glob('submission_*.csv'): f.unlink()
    n_chunks = -(-a.photos//a.chunk)
    done, wall, cpu, gen, rates = 0, 0., 0., 0., []
    print(f'{a.photos:,} photos in {n_chunks} chunks of {a.chunk:,}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; '
          f'text columns stored by {pd.options.mode.string_storage!r}; SEQ_BLOCK {SEQ_BLOCK:,}', flush=True)
    for i in range(n_chunks):
        t0 = time.perf_counter()
        d = make_set(min(a.chunk, a.photos - done)/BASE['n_images'], seed=i)
        gen += time.perf_counter() - t0
        w, c = aggregate(d, out, i == 0)
        n = len(d['images']); done += n; wall += w; cpu += c; rates.append(w/n*1e6)
        del d
        print(f'chunk {i + 1:3}/{n_chunks}: {n:,} photos, {w:5.2f} s ({c:5.2f} CPU s) = {w/n*1e6:5.2f} s per million; '
              f'{done:,} done; rss {rss_gb():.2f} GB, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20:.2f} GB', flush=True)
    sizes = {k: (out/f'submission_{k}.csv').stat().st_size/1e6 for k in ('2021', '2020')}
    k = max(1, len(rates)//5)
    print(f'\n{done:,} photos aggregated in {wall:.1f} s ({cpu:.1f} CPU s): {wall/done*1e6:.2f} s per million photos '
          f'({cpu/done*1e6:.2f} CPU s); generation {gen:.0f} s, not counted')
    print(f'first {k} chunks {sum(rates[:k])/k:.2f} s per million, last {k} {sum(rates[-k:])/k:.2f} s per million')
    print(f'peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20:.2f} GB (the process, generation included); '
          f'submission_2021.csv {sizes["2021"]:,.0f} MB, submission_2020.csv {sizes["2020"]:,.0f} MB in {out}')
    if a.out is None: shutil.rmtree(out)

if __name__ == '__main__': main()
