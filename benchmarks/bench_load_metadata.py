"""Time the metadata loaders on an iWildCam-sized set: `python benchmarks/bench_load_metadata.py [--n-images N]`.

Writes, in a temporary folder, a synthetic (seeded) COCO-CameraTraps training file and an id-keyed MegaDetector
results file in the exact shape of iWildCam 2021 (260k images in 60k sequences at ~400 locations, about one box per
image), then times `load_coco`, `load_megadetector` and `rebuild_sequences` and prints seconds and images per second.
"""
import argparse, json, tempfile, time, uuid
from pathlib import Path
import numpy as np
from iwildcam_nb.data import load_coco
from iwildcam_nb.megadetector import load_megadetector
from iwildcam_nb.cameras import rebuild_sequences, sequence_agreement

def make_images(n_images:int, n_seqs:int, rng)->list:
    "iWildCam 2021 `images` records: sequences of 1-10 frames, 1 s apart, at random cameras and times."
    lens = np.clip(rng.poisson(n_images / n_seqs - 1, n_seqs) + 1, 1, 10)
    lens[-1] += n_images - lens.sum()  # exact total (the last sequence absorbs the rounding)
    if lens[-1] < 1: raise ValueError('n_images too small for n_seqs')
    locs = rng.integers(0, 400, n_seqs)
    start = np.datetime64('2013-01-01T00:00:00') + rng.integers(0, 6 * 365 * 86400, n_seqs).astype('timedelta64[s]')
    ims = []
    for s, (n, loc, t0) in enumerate(zip(lens, locs, start)):
        seq = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | s))
        for f in range(n):
            iid = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | len(ims)))
            t = str(t0 + np.timedelta64(f, 's')).replace('T', ' ') + '.000'
            im = {'seq_num_frames': int(n), 'location': int(loc), 'datetime': t, 'id': iid, 'frame_num': f,
                  'seq_id': seq, 'width': 2048, 'height': 1536, 'file_name': f'{iid}.jpg'}
            if loc % 50 == 0: im['sub_location'] = int(loc % 2)
            ims.append(im)
    return ims

def make_detections(ims:list, rng, boxes_per_image:float=1.0)->list:
    "iWildCam 2021 MegaDetector `images` records: Poisson(boxes_per_image) normalized boxes per image."
    out = []
    for im in ims:
        k = int(rng.poisson(boxes_per_image))
        xy, wh, conf = rng.uniform(0, 0.5, (k, 2)), rng.uniform(0.05, 0.5, (k, 2)), np.sort(rng.uniform(0, 1, k))[::-1]
        dets = [{'category': '1', 'conf': round(float(c), 3), 'bbox': [round(float(v), 4) for v in (*p, *s)]}
                for c, p, s in zip(conf, xy, wh)]
        out.append({'detections': dets, 'id': im['id'], 'max_detection_conf': float(conf[0]) if k else 0.0})
    return out

def write_set(root:Path, n_images:int, n_seqs:int, seed:int=0)->tuple:
    "Write the annotations and MegaDetector files; return their paths."
    rng = np.random.default_rng(seed)
    ims = make_images(n_images, n_seqs, rng)
    cats = [{'id': i, 'name': f'species {i}'} for i in range(205)]
    anns = [{'id': str(uuid.UUID(int=i)), 'image_id': im['id'], 'category_id': int(c)}
            for i, (im, c) in enumerate(zip(ims, rng.integers(0, 205, len(ims))))]
    coco, md = root/'iwildcam2021_train_annotations.json', root/'iwildcam2021_megadetector_results.json'
    coco.write_text(json.dumps({'images': ims, 'categories': cats, 'annotations': anns}))
    md.write_text(json.dumps({'images': make_detections(ims, rng), 'info': {'detector': 'megadetector_v3'},
                              'detection_categories': {'1': 'animal', '2': 'person'}}))
    return coco, md

def timed(label:str, f):
    t = time.perf_counter(); out = f(); dt = time.perf_counter() - t
    print(f'{label:<20} {dt:6.2f} s'); return out, dt

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n-images', type=int, default=260_000)
    p.add_argument('--n-seqs', type=int, default=60_000)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        coco, md = write_set(Path(d), a.n_images, a.n_seqs, a.seed)
        print(f'wrote {a.n_images:,} images / {a.n_seqs:,} sequences in {time.perf_counter() - t:.1f} s '
              f'({coco.stat().st_size / 1e6:.0f} MB annotations, {md.stat().st_size / 1e6:.0f} MB detections)')
        tables, t1 = timed('load_coco', lambda: load_coco(coco))
        dets, t2 = timed('load_megadetector', lambda: load_megadetector(md, images=tables.images))
        seqs, t3 = timed('rebuild_sequences', lambda: rebuild_sequences(tables.images))
    total = t1 + t2 + t3
    print(f'{"total":<20} {total:6.2f} s   {a.n_images / total:,.0f} images/s   '
          f'({len(dets):,} boxes, {seqs.seq_id.nunique():,} rebuilt sequences)')
    agree = sequence_agreement(tables.images, seqs)
    print(f'rebuilt vs given sequences ({agree["n_rebuilt"]:,} vs {agree["n_given"]:,}): {agree["exact"]:.3%} recovered exactly, '
          f'{agree["merged"]:.3%} of rebuilt ones merge given ones (random sequences that met at one camera)')

if __name__ == '__main__': main()
