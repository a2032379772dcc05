"""Landsat-8 patches and the habitat prior (nbs/01g_landsat, nbs/06d_habitat): both array layouts read the
same, every bad input names its file, the features are right on hand-made pixels, the sample writer's files
read back, and the habitat prior helps (and is chosen) where habitat sets the species and GPS cannot tell the
cameras apart."""
import numpy as np, pandas as pd
import pytest
from iwildcam_nb.core import InputError
from iwildcam_nb.landsat import (BANDS, COVERS, RS_DIR, camera_cover, iter_landsat, landsat_files,
                                 landsat_patches, read_location, write_landsat)
from iwildcam_nb.habitat import (HabitatConfig, choose_habitat_weight, combine_lifts, habitat_features,
                                 habitat_lift, habitat_prior, habitat_similarity, location_features,
                                 patch_stats)
from iwildcam_nb.priors import apply_prior, class_counts, prior_lift, sightings, simulate_bayes_probs

def stack(n=3, h=6, w=5, dtype=np.uint16):
    return np.arange(n*h*w*9, dtype=dtype).reshape(n, h, w, 9)

def test_layouts_read_the_same(tmp_path):
    x = stack()
    np.save(tmp_path/'1.npy', x)
    np.save(tmp_path/'2.npy', np.moveaxis(x, -1, 1)) # (N, 9, H, W)
    (tmp_path/'3').mkdir()
    for i, p in enumerate(x): # per-date files, bands last or first
        np.save(tmp_path/'3'/f'LC08_2015010{i + 1}.npy', np.moveaxis(p, -1, 0) if i else p)
    np.save(tmp_path/'4.npy', x[0]) # one (H, W, 9) patch
    for loc in ['1.npy', '2.npy', '3']:
        ps, _ = read_location(tmp_path/loc)
        np.testing.assert_array_equal(np.stack(ps), x)
    assert read_location(tmp_path/'4.npy')[0].shape == (1, 6, 5, 9)
    assert isinstance(read_location(tmp_path/'1.npy')[0], np.memmap)
    assert list(read_location(tmp_path/'3')[1].day) == [1, 2, 3] # dates from the file names
    assert list(landsat_files(tmp_path).index) == ['1', '2', '3', '4']
    assert [l for l, _, _ in iter_landsat(tmp_path, ['3', '1'])] == ['3', '1']

def test_full_size_uint16_and_float(tmp_path):
    a = np.zeros((2, 200, 200, 9), np.uint16); a[..., :7] = 500; a[..., 4] = 3000
    np.save(tmp_path/'big.npy', a); np.save(tmp_path/'flt.npy', a.astype(np.float32)*1e-4)
    f = habitat_features(tmp_path)
    assert f.loc['big', 'ndvi'] == pytest.approx((3000 - 500)/3500, abs=1e-4)
    assert f.loc['flt', 'ndvi'] == pytest.approx(f.loc['big', 'ndvi'], abs=1e-4)

@pytest.mark.parametrize('arr,msg', [
    (np.zeros((2, 4, 5, 8), np.uint16), 'shape: (2, 4, 5, 8): no axis of 9 bands'),
    (np.zeros((4, 9), np.uint16), 'shape: (4, 9): expected'),
    (np.zeros((1, 2, 4, 5, 9), np.uint16), 'shape: (1, 2, 4, 5, 9): expected'),
    (np.array(['a', 'b']), 'dtype: <U1 is not numeric'),
    (np.zeros((2, 4, 5, 9), bool), 'dtype: bool is not numeric')])
def test_bad_arrays_name_the_file(tmp_path, arr, msg):
    np.save(tmp_path/'77.npy', arr)
    with pytest.raises(InputError, match='77.npy') as e: read_location(tmp_path/'77.npy')
    assert msg in str(e.value)

def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r'gone\.npy: -: no such file'): read_location(tmp_path/'gone.npy')
    (tmp_path/'junk.npy').write_bytes(b'not numpy')
    with pytest.raises(InputError, match=r'junk\.npy: -: not a NumPy'): read_location(tmp_path/'junk.npy')
    (tmp_path/'empty').mkdir()
    with pytest.raises(InputError, match='empty: -: folder holds no .npy'): read_location(tmp_path/'empty')
    (tmp_path/'odd').mkdir()
    np.save(tmp_path/'odd'/'a.npy', stack(1)[0]); np.save(tmp_path/'odd'/'b.npy', stack(1, 7)[0])
    with pytest.raises(InputError, match='odd: -: patch sizes differ'): read_location(tmp_path/'odd')
    np.save(tmp_path/'5.npy', stack()); (tmp_path/'5.dates.txt').write_text('2015-01-01\n2016-01-01\n')
    with pytest.raises(InputError, match=r'5\.dates\.txt: -: 2 dates for 3 patches'):
        read_location(tmp_path/'5.npy')
    (tmp_path/'5.dates.txt').write_text('2015-01-01\nsoon\n2016-01-01\n')
    with pytest.raises(InputError, match=r"5\.dates\.txt: line 2: 'soon' is not a date"):
        read_location(tmp_path/'5.npy')
    with pytest.raises(InputError, match=r'404\.npy: -: no Landsat patches for location 404'):
        list(iter_landsat(tmp_path, ['404']))
    with pytest.raises(InputError, match='no such folder'): landsat_files(tmp_path/'nowhere')

def test_features_on_known_pixels():
    p = np.zeros((2, 2, 9), np.float32); p[..., 7:] = 300
    p[0, 0, :7] = [.03, .03, .06, .05, .45, .2, .1] # vegetation: NDVI (.45-.05)/(.45+.05) = .8
    p[0, 1, :7] = p[1, 1, :7] = [.05, .06, .08, .04, .02, .01, .005] # water: NDWI (.08-.02)/(.08+.02) = .6
    p[1, 0, :7] = [.03, .03, .06, .05, .45, .2, .1]
    s = patch_stats(p)
    assert s['cloud'] == 0 and s['water'] == .5
    assert s['ndvi'] == pytest.approx(np.mean([.8, .8, -1/3, -1/3]))
    assert s['ndwi'] == pytest.approx(np.mean([(.06 - .45)/.51]*2 + [.6]*2))
    assert s['red'] == pytest.approx(np.median([.05, .04, .05, .04])) and s['tir1'] == pytest.approx(300)
    cloudy = p.copy(); cloudy[0, :, 1] = .4 # half the pixels bright in blue
    assert patch_stats(cloudy)['cloud'] == .5
    f = location_features([p, cloudy, p], pd.DatetimeIndex(['2014-01-01', '2014-07-01', '2015-07-01']))
    assert (f.n_patches, f.n_clear) == (3, 2) # the cloudy patch is dropped (cloud share .5 > max_cloud .1)
    assert f.ndvi == pytest.approx(s['ndvi']) and f.ndvi_swing == pytest.approx(0)
    assert np.isnan(f.ndvi_q2) and f.ndvi_q3 == pytest.approx(s['ndvi']) # April-June: no clear patch
    assert np.isnan(location_features([cloudy]).ndvi) # nothing clear: missing, not made up

def test_similarity_and_generator():
    rng = np.random.default_rng(0); d = pd.date_range('2015-01-01', periods=6, freq='2MS')
    ps = {k: landsat_patches(camera_cover(sp), d, 12, cloud_rate=0, rng=rng)
          for k, sp in [('f1', ['margay']), ('f2', ['curassow']), ('s1', ['warthog'])]}
    f = pd.DataFrame({k: location_features(v, d) for k, v in ps.items()}).T
    s = habitat_similarity(f, ['f1'], ['f2', 's1'])
    assert s.loc['f1', 'f2'] > s.loc['f1', 's1']
    assert f.loc['s1', 'ndvi_swing'] > f.loc['f1', 'ndvi_swing'] + .1 # savanna browns in the dry season
    assert f.loc['f1', 'ndvi'] > .7 > f.loc['s1', 'ndvi']

def test_write_landsat_reads_back(tmp_path):
    class Loc: # what the writer needs of a `Location`
        def __init__(self, id, species): self.id, self.species = id, species
    locs = [Loc(12, ('agouti', 'ocelot')), Loc(345, ('elephant', 'warthog'))]
    root = write_landsat(tmp_path, locs, seed=3, patches=(5, 6), size=20)
    assert root == tmp_path/RS_DIR and sorted(p.name for p in root.iterdir()) == [
        '12.dates.txt', '12.npy', '345.dates.txt', '345.npy']
    a = np.load(root/'12.npy')
    assert a.dtype == np.uint16 and a.shape[1:] == (20, 20, 9) and 5 <= len(a) <= 6
    f = habitat_features(tmp_path)
    assert f.loc['12', 'ndvi'] > f.loc['345', 'ndvi'] # forest species, greener surroundings

def habitat_world(root, n=16, seqs=30, seed=0):
    "Cameras at one place (GPS cannot separate them); forest ones see species 1-3, savanna ones 4-6."
    rng, rows = np.random.default_rng(seed), []
    for c in range(n):
        forest = c % 2 == 1
        sp = rng.choice([1, 2, 3] if forest else [4, 5, 6], seqs, p=[.5, .3, .2])
        rows += [(f'h{c}', f'h{c}_{i}', s) for i, s in enumerate(np.where(rng.random(seqs) < .3, 0, sp))]
        cover = pd.Series([.9, 0, .1, 0] if forest else [0, .8, .05, .15], index=list(COVERS))
        when = pd.date_range('2015-01-01', periods=6, freq='2MS')
        np.save(root/f'h{c}.npy', landsat_patches(cover, when, 12, rng=rng))
    d = pd.DataFrame(rows, columns=['location', 'image_id', 'category_id'])
    ims = d.assign(seq_id=d.image_id, datetime=pd.Timestamp('2020-06-01 12:00'))
    ims = ims[['image_id', 'location', 'datetime', 'seq_id']]
    gps = pd.DataFrame({'location': d.location.unique(), 'latitude': 1., 'longitude': 30.})
    return ims, d[['image_id', 'category_id']], gps

def test_habitat_prior_helps_where_habitat_sets_species(tmp_path):
    ims, labels, gps = habitat_world(tmp_path)
    F, V = habitat_features(tmp_path), list(range(7))
    probs = simulate_bayes_probs(labels.set_index('image_id').category_id, V, seed=1)
    ch = choose_habitat_weight(probs, ims, labels, gps, F, V)
    r = ch.reference.accuracy
    assert ch.w_habitat > 0
    assert r.iloc[2] > r['images alone'] + .03 # images x habitat prior, held-out cameras
    assert r.iloc[3] >= r.iloc[1] + .03 # both beat GPS alone, which cannot tell the cameras apart
    # a test camera in forest gets forest species from the training cameras, GPS or not
    train = ims[ims.location != 'h1']; seen = sightings(train, labels[labels.image_id.isin(train.image_id)])
    hp = habitat_prior(class_counts(seen, V), ['h1'], F)
    assert hp.loc['h1', [1, 2, 3]].sum() > 2*hp.loc['h1', [4, 5, 6]].sum()
    test = ims[ims.location == 'h1']
    gl, hl = prior_lift(test, seen, gps, V), habitat_lift(test, seen, F, V)
    lift = combine_lifts(gl, hl, ch.w_gps, ch.w_habitat)
    p = probs.loc[test.image_id]; truth = labels.set_index('image_id').category_id[test.image_id]
    assert (apply_prior(p, lift, 1.).idxmax(axis=1) == truth).mean() >= (p.idxmax(axis=1) == truth).mean()

def test_habitat_prior_off_when_habitat_says_nothing(tmp_path):
    ims, labels, gps = habitat_world(tmp_path)
    F, V = habitat_features(tmp_path), list(range(7))
    F = F.set_axis(np.random.default_rng(1).permutation(F.index)) # habitat shuffled between cameras
    probs = simulate_bayes_probs(labels.set_index('image_id').category_id, V, seed=1)
    assert choose_habitat_weight(probs, ims, labels, gps, F, V).w_habitat == 0
    with pytest.raises(InputError, match='must include 0'):
        choose_habitat_weight(probs, ims, labels, gps, F, V, HabitatConfig(weights=(1.,)))

def test_bands_assumption_is_stated():
    assert BANDS[:7] == ('coastal', 'blue', 'green', 'red', 'nir', 'swir1', 'swir2') and len(BANDS) == 9
