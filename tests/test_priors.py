"""Location and time prior (nbs/06c_priors.ipynb): distances and the withheld-country rule, the smoothing
formulas worked by hand, the lift and its application, and the leave-one-location-out weight choice: no
leak of the held-out camera, w = 0 where place means nothing, w > 0 where it matters, the tie rule, bad input;
and the embedded sample."""
import numpy as np, pandas as pd
import pytest
from iwildcam_nb.core import InputError
from iwildcam_nb.priors import (PriorConfig, apply_prior, base_rate, choose_prior_weight, class_counts,
                                haversine_km, location_distances, location_prior, prior_lift, sightings,
                                simulate_bayes_probs, simulate_cameras, time_prior, _choose)

GPS = pd.DataFrame({'location': list('ABTF'), 'latitude': [0, 0, 0, 40.], 'longitude': [0, .2, .1, 40.]})
COUNTS = pd.DataFrame(np.eye(3)*10, index=pd.Index(['A', 'B', 'W'], name='location'), columns=[1, 2, 3])

def cv(d, probs, **kw):
    "choose_prior_weight on a simulate_cameras data set."
    return choose_prior_weight(probs, d['images'], d['labels'], d['gps'], list(d['categories'].category_id),
                               PriorConfig(**kw))

def truth(d): return d['labels'].set_index('image_id').category_id

def test_haversine_known_distances():
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=.5) # Paris-London
    assert haversine_km(0, 0, 0, 180) == pytest.approx(np.pi*6371.0088)
    assert haversine_km(90, 0, -90, 0) == pytest.approx(np.pi*6371.0088) # pole to pole
    assert haversine_km(10, 20, 30, 40) == pytest.approx(haversine_km(30, 40, 10, 20))
    assert haversine_km(0, [0, 0, 0], [0, 1, 2], 0).shape == (3,)

def test_distances_withheld_country_is_one_place():
    d = location_distances(['T', 'X', 'F'], ['A', 'W', 'V'], GPS)
    assert d.loc['X', 'W'] == 0 and d.loc['X', 'V'] == 0 # both coordinate-less: one place
    assert np.isinf(d.loc['X', 'A']) and np.isinf(d.loc['T', 'W'])
    assert d.loc['T', 'A'] == pytest.approx(haversine_km(0, .1, 0, 0))
    ints = GPS.assign(location=[1, 2, 3, 4]) # integer ids in the GPS table match text ids
    assert location_distances(['3'], [1], ints).iloc[0, 0] == pytest.approx(d.loc['T', 'A'])
    with pytest.raises(InputError, match='appears twice'):
        location_distances(['A'], ['B'], pd.concat([GPS, GPS]))
    with pytest.raises(InputError, match='latitude'):
        location_distances(['A'], ['B'], GPS.drop(columns='latitude'))

def test_location_prior_by_hand():
    pr = location_prior(COUNTS, ['T', 'X', 'F'], GPS) # defaults: pseudo_count 10, base_cameras 1, scale 50 km
    base, w = np.full(3, 1/3), np.exp(-haversine_km(0, 0, 0, .1)/50)
    fa, fb = (np.array([10, 0, 0]) + 10*base)/20, (np.array([0, 10, 0]) + 10*base)/20
    np.testing.assert_allclose(pr.loc['T'], (w*fa + w*fb + base)/(2*w + 1))
    np.testing.assert_allclose(pr.loc['X'], [.25, .25, .5]) # only W, at weight 1
    np.testing.assert_allclose(pr.loc['F'], base, atol=1e-12) # thousands of km from everyone: the base rate
    np.testing.assert_allclose(pr.sum(axis=1), 1)

def test_location_prior_k_and_ties():
    far = GPS.assign(longitude=[0, .5, .1, 40.]) # B now 44 km from T, A 11 km
    one = location_prior(COUNTS, ['T'], far, PriorConfig(k=1, pseudo_count=0, base_cameras=1e-9))
    assert one.loc['T', 1] == pytest.approx(1, abs=1e-6) # k=1: only A
    tied = location_prior(COUNTS, ['T'], GPS, PriorConfig(k=1, pseudo_count=0, base_cameras=1e-9))
    assert tied.loc['T', 1] == pytest.approx(.5, abs=1e-6) # A and B tie at the 1st distance: both kept
    none = location_prior(COUNTS.iloc[:0], ['T'], GPS) # no training camera at all
    assert none.shape == (1, 3) and (none.to_numpy() == 0).all()

def test_time_prior_wraps_and_smooths():
    h = pd.DataFrame({1: 0, 2: 5}, index=pd.Index(range(24), name='hour')); h.loc[0, 1] = 30
    tp = time_prior(h)
    assert tp.loc[23, 1] == pytest.approx(tp.loc[1, 1]) # symmetric around midnight
    assert tp.loc[0, 1] > tp.loc[2, 1] > tp.loc[12, 1]
    raw = time_prior(h, bandwidth=0, pseudo_count=0)
    assert raw.loc[0, 1] == pytest.approx(30/35) and raw.loc[5, 1] == 0
    m = pd.DataFrame({1: 3, 2: 0}, index=pd.Index(range(1, 13), name='month')); m.loc[12, 2] = 4
    months = time_prior(m, bins=range(1, 13), bandwidth=1)
    assert list(months.index) == list(range(1, 13)) and months.loc[1, 2] == pytest.approx(months.loc[11, 2])
    assert months.loc[1, 2] > months.loc[6, 2] # January is next to December

def test_sightings_count_a_sequence_once_at_its_first_frame():
    when = pd.to_datetime(['2020-01-01 23:59:59', '2020-01-01 23:59:58', '2020-01-02 00:00:01', None])
    ims = pd.DataFrame({'image_id': list('abcd'), 'location': [7, 7, 7, 8], 'seq_id': list('ssst'),
                        'datetime': when})
    labels = pd.DataFrame({'image_id': ['a', 'b', 'c', 'd'], 'category_id': [1, 1, 2, 1]})
    s = sightings(ims, labels)
    assert sorted(zip(s.location, s.category_id)) == [('7', 1), ('7', 2), ('8', 1)]
    assert s[(s.location == '7') & (s.category_id == 1)].hour.item() == 23 # the sequence's earliest frame
    assert s[s.location == '8'].hour.isna().all() # no time: no hour, still a sighting
    assert len(sightings(ims, labels, count_by='image_id')) == 4
    c = class_counts(s, [0, 1, 2], 'hour')
    assert list(c.columns) == [0, 1, 2] and c.to_numpy().sum() == 2 # the timeless sighting has no hour
    assert base_rate(s, [0, 1, 2]).tolist() == pytest.approx([0, 2/3, 1/3])
    with pytest.raises(InputError, match='seq_id'): sightings(ims.drop(columns='seq_id'), labels)
    with pytest.raises(InputError, match='not in the vocabulary'): class_counts(s, [0, 1])

def test_lift_terms_neutral_and_missing():
    seen = pd.DataFrame({'location': list('AAAABBBBWW'), 'hour': [1, 2, 1, 12, 12, 13, 12, 1, 12, 12],
                         'month': 6, 'category_id': [1, 1, 1, 0, 2, 2, 2, 0, 3, 3]})
    ims = pd.DataFrame({'image_id': ['t2', 'x', 'f', 'new'], 'location': ['T', 'X', 'F', 'Z'],
                        'datetime': pd.to_datetime(['2020-06-01 02:00', None, '2020-06-01 14:00',
                                                    '2020-06-01 02:00'])})
    V = [0, 1, 2, 3, 4] # 4: never seen
    lift = prior_lift(ims, seen, GPS, V)
    assert (lift[[0, 4]] == 1).all().all() # empty is neutral; an unseen class says nothing
    loc = prior_lift(ims, seen, GPS, V, PriorConfig(terms=('location',)))
    hour = prior_lift(ims, seen, GPS, V, PriorConfig(terms=('hour',)))
    np.testing.assert_allclose(lift, loc*hour)
    assert (hour.loc['x'] == 1).all() and lift.loc['x'].idxmax() == 3 # no time: location alone speaks
    np.testing.assert_allclose(loc.loc['new'], loc.loc['x']) # Z has no coordinates either: withheld country
    none = prior_lift(ims, seen.iloc[:0], GPS, V)
    assert (none == 1).all().all() # nothing seen: no lift anywhere
    with pytest.raises(InputError, match="unknown term 'week'"):
        prior_lift(ims, seen, GPS, V, PriorConfig(terms=('week',)))

def test_apply_prior_by_hand():
    p = pd.DataFrame({1: [.6, 1.], 2: [.4, 0.]}, index=['i', 'j'])
    lift = pd.DataFrame({2: [2., 2.], 1: [.5, .5]}, index=['j', 'i']) # other order of rows and columns
    np.testing.assert_allclose(apply_prior(p, lift, 1).loc['i'], [.3/1.1, .8/1.1])
    np.testing.assert_allclose(apply_prior(p, lift, 0), p)
    assert apply_prior(p, lift, 1e4).loc['i', 2] == pytest.approx(1) # no underflow
    assert apply_prior(p, lift, 9).loc['j', 2] == 0 # what the image model rules out stays out
    np.testing.assert_allclose(apply_prior(p, lift, 2.5).sum(axis=1), 1)
    with pytest.raises(InputError, match="image 'j': no prior"): apply_prior(p, lift.loc[['i']], 1)
    with pytest.raises(InputError, match='must be 0 or more'): apply_prior(p, lift, -.5)
    with pytest.raises(InputError, match='must be 0 or more'): apply_prior(p, lift, float('nan'))

def test_tie_rule_by_hand():
    cfg, n = PriorConfig(weights=(0., 1.)), pd.Series(10, index=list('abc'))
    even = pd.DataFrame({0.: [5, 5, 5], 1.: [6, 6, 6]}, index=list('abc'))
    lumpy = pd.DataFrame({0.: [5, 5, 5], 1.: [8, 5, 5]}, index=list('abc'))
    e, l = _choose(cfg, even, even*0., n), _choose(cfg, lumpy, lumpy*0., n)
    assert e.se[0.] == pytest.approx(0) and e.tie.tolist() == [False, True] # a consistent gain: prior on
    assert l.gap[0.] == pytest.approx(-.1) and l.se[0.] == pytest.approx(.1) # same gain, as large an error
    assert l.tie.tolist() == [True, True] # a tie: the smaller weight (off) wins
    half = PriorConfig(weights=(0., 1.), se_rule=.5)
    assert _choose(half, lumpy, lumpy*0., n).tie.tolist() == [False, True]
    ll = _choose(PriorConfig(weights=(0., 1.), metric='log_loss'), even, even.astype(float), n) # loss rises
    assert ll.tie.tolist() == [True, False] # by log-loss w=0 is best here, though w=1 has the better accuracy

@pytest.fixture(scope='module')
def sims():
    return {m: simulate_cameras(seed=0, place_matters=m) for m in (True, False)}

def test_cv_finds_a_real_prior_and_refuses_a_null_one(sims):
    real, null = sims[True], sims[False]
    on = cv(real, simulate_bayes_probs(truth(real), list(real['categories'].category_id), seed=1))
    assert on.weight > 0 and on.scores.accuracy[on.weight] > on.scores.accuracy[0.] + .05
    assert on.reference.accuracy['prior alone'] > on.reference.accuracy['base rate alone'] + .1
    assert len(on.per_location) == 40 and on.per_location.images.sum() == len(real['images'])
    for probs in [simulate_bayes_probs(truth(null), list(null['categories'].category_id), seed=1)]:
        for terms in [('location',), ('hour',), ('location', 'hour')]:
            assert cv(null, probs, terms=terms).weight == 0

def test_cv_never_sees_the_held_out_camera():
    "Each camera has a species of its own: a prior that saw the camera would be perfect; an honest one fails."
    rows = [(f'c{c}_{i}', f'c{c}', f'c{c}_{i}', c + 1) for c in range(12) for i in range(10)]
    images = pd.DataFrame(rows, columns=['image_id', 'location', 'seq_id', 'category_id'])
    images['datetime'] = pd.Timestamp('2020-01-01 12:00')
    labels, V = images[['image_id', 'category_id']], list(range(13))
    gps = pd.DataFrame({'location': [f'c{c}' for c in range(12)], 'latitude': 0.,
                        'longitude': np.arange(12)*.01}) # 1.1 km apart
    probs = simulate_bayes_probs(labels.set_index('image_id').category_id, V, signal=1., seed=0)
    ch = choose_prior_weight(probs, images, labels, gps, V)
    assert ch.reference.accuracy['prior alone'] == 0 and ch.weight == 0
    assert (ch.per_location.accuracy_prior_alone == 0).all()

def test_cv_bad_input(sims):
    d = sims[True]; V = list(d['categories'].category_id); p = simulate_bayes_probs(truth(d), V, seed=1)
    with pytest.raises(InputError, match='must include 0'): cv(d, p, weights=(.5, 1))
    with pytest.raises(InputError, match="'auc' is not"): cv(d, p, metric='auc')
    with pytest.raises(InputError, match='has probs, no row'):
        choose_prior_weight(p, d['images'].iloc[3:], d['labels'], d['gps'], V)
    with pytest.raises(InputError, match='has probabilities but no label'):
        choose_prior_weight(p, d['images'], d['labels'].iloc[3:], d['gps'], V)
    with pytest.raises(InputError, match='not in the vocabulary'):
        choose_prior_weight(p.assign(**{'99': 0.}), d['images'], d['labels'], d['gps'], V)

def test_on_the_embedded_sample(tmp_path):
    from iwildcam_nb.data import load_coco
    from iwildcam_nb.sample import make_sample
    from iwildcam_nb.taxonomy import load_gps_locations
    from iwildcam_nb.vocab import class_vocab
    meta = make_sample(tmp_path/'s')/'metadata'
    gps = load_gps_locations(meta/'gps_locations.json')
    tr = load_coco(meta/'iwildcam2021_train_annotations.json')
    places = pd.read_csv(meta/'sample_locations.csv', dtype={'location': str})
    V, seen = class_vocab(tr.categories), sightings(tr.images, tr.labels)
    counts = class_counts(seen, V)
    withheld_train = places[places.withheld & (places.split == 'train')].location.tolist()
    withheld_test = places[places.withheld & (places.split == 'test')].location.tolist()
    pr = location_prior(counts, withheld_test, gps)
    base, f = counts.sum()/counts.to_numpy().sum(), counts.add(10*counts.sum()/counts.to_numpy().sum())
    f = f.div(counts.sum(axis=1) + 10, axis=0)
    expect = (f.loc[withheld_train].sum() + base)/(len(withheld_train) + 1) # the withheld training cameras
    np.testing.assert_allclose(pr.iloc[0], expect)
    ch = choose_prior_weight(simulate_bayes_probs(tr.labels.set_index('image_id').category_id, V, seed=1),
                             tr.images, tr.labels, gps, V)
    assert ch.weight == 0 and set(ch.per_location.index) == set(places.location[places.split == 'train'])
