"""Load iWildCam-sized Landsat-8 arrays and compute habitat features, streamed:
`python benchmarks/bench_landsat.py [--locations N] [--median_patches 147] [--size 200]
 [--mode per-location|all-first]`.

iWildCam 2021's `iwildcam_rs_npy` holds 414 locations x 39-406 (median 147) patches of 200x200x9 pixels:
about 44 GB as uint16, more than the free disk of most machines that run this. So by default each location
is written to a temporary folder as `<location>.npy` (uint16, patch by patch through a memory-mapped file,
so writing never holds a location in RAM), then read back by `habitat_features` (np.load with
mmap_mode='r', one patch at a time), timed, and deleted before the next one (`--mode per-location`).
`--mode all-first` writes every location first and then reads them all in one `habitat_features` call, as a
real run does; use it with a `--locations` count that fits the disk. Patch counts per location are drawn
from a log-normal with the given median, clipped to 39-406 as in iWildCam. Peak memory: resident set size
(getrusage) of the whole process, and tracemalloc's peak during reading alone. The seconds are per patch
and extrapolated to the full 414 x 147 set; the memory is the point: it must not grow with the data.
"""
import argparse, resource, shutil, sys, tempfile, time, tracemalloc
from pathlib import Path
import numpy as np, pandas as pd
from iwildcam_nb.landsat import RS_DIR, camera_cover, landsat_patches
from iwildcam_nb.habitat import habitat_features

GB = 1024**3

def patch_counts(n:int, median:int, rng)->np.ndarray:
    "Patches per location: log-normal around `median`, clipped to iWildCam's 39-406."
    return np.clip(np.round(median*np.exp(rng.normal(0, .45, n))), 39, 406).astype(int)

def write_location(root:Path, loc:str, n:int, size:int, rng, chunk:int=16)->int:
    "Write one `<loc>.npy` of n (size x size x 9) uint16 patches through a memory-mapped file; its bytes."
    t0, t1 = pd.Timestamp('2013-04-11').value, pd.Timestamp('2019-12-31').value
    dates = pd.DatetimeIndex(np.sort(rng.integers(t0, t1, n)))
    cover = camera_cover([rng.choice(['margay', 'warthog', 'bushbuck', 'elephant'])], rng)
    n = int(n)
    a = np.lib.format.open_memmap(root/f'{loc}.npy', 'w+', np.uint16, (n, size, size, 9))
    for i in range(0, n, chunk):
        a[i:i + chunk] = landsat_patches(cover, dates[i:i + chunk], size, rng=rng)
    a.flush(); del a
    (root/f'{loc}.dates.txt').write_text('\n'.join(dates.strftime('%Y-%m-%d')) + '\n')
    return n*size*size*9*2

def rss_gb()->float:
    "Peak resident set size of this process so far, GB (Linux reports KB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024/GB

def read(root:Path, locs:list)->tuple:
    "Seconds and tracemalloc peak (GB) of `habitat_features` over `locs`."
    tracemalloc.start(); t0 = time.perf_counter()
    f = habitat_features(root, locs)
    dt = time.perf_counter() - t0; peak = tracemalloc.get_traced_memory()[1]/GB; tracemalloc.stop()
    assert len(f) == len(locs) and f.n_clear.gt(0).all()
    return dt, peak

def main(a)->dict:
    rng, tmp = np.random.default_rng(a.seed), Path(tempfile.mkdtemp(prefix='bench_landsat_', dir=a.tmp))
    root = tmp/RS_DIR; root.mkdir()
    counts = patch_counts(a.locations, a.median_patches, rng)
    need = int(counts.sum())*a.size**2*9*2
    free = shutil.disk_usage(tmp).free
    if a.mode == 'all-first' and need > .8*free:
        sys.exit(f'all-first needs {need/GB:.1f} GB, {free/GB:.1f} GB free: '
                 'lower --locations or use --mode per-location')
    write_s = read_s = peak_tm = 0.; nbytes = []
    try:
        locs = [f'{i}' for i in range(a.locations)]
        for loc, n in zip(locs, counts):
            t0 = time.perf_counter(); nbytes.append(write_location(root, loc, n, a.size, rng))
            write_s += time.perf_counter() - t0
            if a.mode == 'per-location':
                s, p = read(root, [loc]); read_s += s; peak_tm = max(peak_tm, p)
                (root/f'{loc}.npy').unlink(); (root/f'{loc}.dates.txt').unlink()
        if a.mode == 'all-first': read_s, peak_tm = read(root, locs)
    finally: shutil.rmtree(tmp)
    patches, data = int(counts.sum()), sum(nbytes)/GB
    full = 414*147*200*200*9*2/GB
    res = {'mode': a.mode, 'locations': a.locations, 'patches': patches, 'size': a.size,
           'data GB (uint16)': round(data, 2), 'largest location GB': round(max(nbytes)/GB, 3),
           'write s': round(write_s, 1), 'read+features s': round(read_s, 1),
           'ms per patch': round(1000*read_s/patches, 1),
           'extrapolated s, 414 x 147 at this size': round(read_s/patches*414*147, 0),
           'peak RSS GB (whole process)': round(rss_gb(), 3),
           'tracemalloc peak GB (reading)': round(peak_tm, 3),
           'peak RSS / data read': round(rss_gb()/data, 3),
           'peak RSS / full iWildCam (44 GB)': round(rss_gb()/full, 4)}
    for k, v in res.items(): print(f'{k:>42}: {v}')
    return res

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--locations', type=int, default=8, help='locations (iWildCam: 414; default scaled down)')
    p.add_argument('--median_patches', type=int, default=147,
                   help='median patches per location (iWildCam: 147)')
    p.add_argument('--size', type=int, default=200, help='patch side in pixels (iWildCam: 200)')
    p.add_argument('--mode', choices=['per-location', 'all-first'], default='per-location',
                   help='delete each location after reading it, or write all then read all')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--tmp', default=None, help='folder for the temporary arrays (default: the system temp)')
    main(p.parse_args())
