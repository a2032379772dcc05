"""Taxonomy stage: one hand-worked case per SpeciesNet rule (rollup levels and their strict threshold, top-5 only,
blank/human/vehicle, geofence allow/block with admin1, blocked species rolled up), geofence and taxonomy files, the
offline country lookup and iWildCam's gps_locations.json, tried on the embedded sample's files too. The numbers in each test are worked out by hand from speciesnet/geofence_utils.py and
speciesnet/ensemble_prediction_combiner.py (google/cameratrapai, commit 6520b83)."""
import json, subprocess, sys
import numpy as np, pandas as pd
import pytest
from iwildcam_nb.core import InputError
from iwildcam_nb.taxonomy import (SPECIESNET, SpeciesNetRules, ancestor_key, check_taxonomy, from_speciesnet_labels,
                                  geofence_from_training, is_blocked, load_gps_locations, locate, read_geofence, read_taxonomy, roll_up, speciesnet_decide,
                                  taxon_keys, taxon_nodes, to_speciesnet_labels, write_geofence)

ROWS = [(0, 'empty', '', '', '', '', '', ''),
        (2, 'tayassu pecari', 'mammalia', 'cetartiodactyla', 'tayassuidae', 'tayassu', 'pecari', 'white-lipped peccary'),
        (3, 'dasyprocta punctata', 'mammalia', 'rodentia', 'dasyproctidae', 'dasyprocta', 'punctata', 'agouti'),
        (10, 'leopardus pardalis', 'mammalia', 'carnivora', 'felidae', 'leopardus', 'pardalis', 'ocelot'),
        (50, 'leopardus wiedii', 'mammalia', 'carnivora', 'felidae', 'leopardus', 'wiedii', 'margay'),
        (24, 'panthera onca', 'mammalia', 'carnivora', 'felidae', 'panthera', 'onca', 'jaguar'),
        (6, 'puma concolor', 'mammalia', 'carnivora', 'felidae', 'puma', 'concolor', 'puma'),
        (26, 'tinamus major', 'aves', 'tinamiformes', 'tinamidae', 'tinamus', 'major', 'great tinamou'),
        (75, 'human', 'mammalia', 'primates', 'hominidae', 'homo', 'sapiens', 'human')]
COLS = ['category_id', 'name', 'class', 'order', 'family', 'genus', 'species', 'common_name']
JAGUAR, FELIDAE, CARNIVORA = 'mammalia;carnivora;felidae;panthera;onca', 'mammalia;carnivora;felidae;;', 'mammalia;carnivora;;;'

@pytest.fixture
def tax(): return check_taxonomy(pd.DataFrame(ROWS, columns=COLS))

def probs(tax, *rows):
    "A probs table, one row per dict {class name: p}, columns = category ids; index i0, i1, ..."
    ids = dict(zip(tax['name'], tax.category_id))
    df = pd.DataFrame([{ids[k]: v for k, v in r.items()} for r in rows], index=[f'i{i}' for i in range(len(rows))])
    return df.reindex(columns=list(ids.values())).fillna(0.)

def one(tax, row, **kw):
    "speciesnet_decide on a single image: (name, score, source)."
    d = speciesnet_decide(probs(tax, row), tax, **kw).iloc[0]
    return d['name'], d.score, d.source

def place(country, admin1=None): return pd.DataFrame({'country': [country], 'admin1': [admin1]}, index=['i0'])
def box(category, conf): return pd.DataFrame({'image_id': ['i0'], 'category': [category], 'conf': [conf]})

# ---------------------------------------------------------------- rollup (threshold #5a)

def test_rollup_stops_at_genus_when_the_genus_sum_passes(tax):
    # ocelot .4 + margay .3 = .7 at Leopardus > .65; the species' own .4 is far below the 0.8 of rule 4a
    name, score, src = one(tax, {'leopardus pardalis': .4, 'leopardus wiedii': .3, 'puma concolor': .2, 'empty': .1})
    assert (name, src) == ('leopardus', 'classifier+rollup_to_genus') and score == pytest.approx(.7)

def test_rollup_goes_on_to_family_when_no_genus_passes(tax):
    # genera: Leopardus .4, Panthera .3, Puma .2 (none > .65); Felidae .9
    name, score, src = one(tax, {'leopardus pardalis': .4, 'panthera onca': .3, 'puma concolor': .2, 'empty': .1})
    assert (name, src) == ('felidae', 'classifier+rollup_to_family') and score == pytest.approx(.9)

def test_rollup_threshold_is_strict(tax):
    assert .4 + .25 == .65
    p = probs(tax, {'leopardus pardalis': .4, 'leopardus wiedii': .25, 'tayassu pecari': .2, 'tinamus major': .15})
    r = roll_up(p, tax).iloc[0] # Leopardus .65 is not above .65; Felidae .65 neither; Mammalia .85 is
    assert (r['name'], r.source) == ('mammalia', 'classifier+rollup_to_class')
    assert roll_up(p, tax, threshold=.64).iloc[0]['name'] == 'leopardus'

def test_only_the_top_five_classes_are_summed(tax):
    # the margay (.08) is 6th: Leopardus has .58, not .66, and the answer is Mammalia (.58 + 3 * .085)
    row = {'leopardus pardalis': .58, 'tayassu pecari': .085, 'dasyprocta punctata': .085, 'human': .085, 'tinamus major': .085, 'leopardus wiedii': .08}
    r = roll_up(probs(tax, row), tax).iloc[0]
    assert (r['name'], r.score) == ('mammalia', pytest.approx(.835))
    assert roll_up(probs(tax, row), tax, top_k=6).iloc[0]['name'] == 'leopardus'

def test_kingdom_rollup_answers_animal_and_blank_adds_nothing(tax):
    # classes .3 + .3 + .1 = .7 (only at the kingdom); empty's .3 counts nowhere
    name, score, src = one(tax, {'empty': .3, 'tinamus major': .3, 'tayassu pecari': .3, 'leopardus pardalis': .1})
    assert (name, src) == ('animal', 'classifier+rollup_to_kingdom') and score == pytest.approx(.7)
    assert speciesnet_decide(probs(tax, {'empty': .3, 'tinamus major': .3, 'tayassu pecari': .3, 'leopardus pardalis': .1}), tax).taxon.iloc[0] == SPECIESNET['animal']

def test_below_threshold_everywhere_is_unknown_or_an_animal_box(tax):
    weak = {'empty': .45, 'tinamus major': .2, 'tayassu pecari': .2, 'human': .15} # animals .55 in all
    assert one(tax, weak) == ('unknown', .45, 'classifier') # unknown keeps the top score
    assert one(tax, weak, dets=box('animal', .6)) == ('animal', .6, 'detector') # rule 5b
    assert one(tax, weak, dets=box('animal', .5))[0] == 'unknown' # 5b is strict
    assert pd.isna(speciesnet_decide(probs(tax, weak), tax).label.iloc[0]) # no class of the vocabulary

# ---------------------------------------------------------------- blank, human, vehicle, species (rules 1-4)

def test_blank_needs_no_box_or_extra_high_confidence(tax):
    row = {'empty': .6, 'leopardus pardalis': .4}
    assert one(tax, row) == ('empty', .6, 'classifier') # 3a: no box
    assert one(tax, row, dets=box('animal', .3)) == ('unknown', .6, 'classifier') # 3a needs the box below .2; nothing else holds
    assert one(tax, {'empty': .995, 'leopardus pardalis': .005}, dets=box('animal', .9))[0] == 'empty' # 3b
    assert one(tax, {'empty': .99, 'leopardus pardalis': .01}, dets=box('animal', .9))[0] == 'animal' # .99 is not above .99: 5b

def test_people_and_vehicles(tax):
    row = {'empty': .5, 'human': .3, 'tayassu pecari': .2}
    assert one(tax, row, dets=box('person', .8)) == ('human', .8, 'detector') # 1a
    assert one(tax, {'human': .6, 'empty': .4}, dets=box('person', .3)) == ('human', .6, 'classifier') # 1b
    assert one(tax, {'human': .6, 'empty': .4}, dets=box('vehicle', .3)) == ('human', .6, 'classifier') # 2a
    d = speciesnet_decide(probs(tax, row), tax, dets=box('3', .8)).iloc[0] # 2b, MegaDetector's '3'; no vehicle class here
    assert (d['name'], d.taxon, d.source) == ('vehicle', SPECIESNET['vehicle'], 'detector') and pd.isna(d.label)
    assert speciesnet_decide(probs(tax, row), tax, dets=box('person', .9)).label.iloc[0] == 75 # the vocabulary's human class

def test_species_needs_point_eight_or_an_animal_box(tax):
    row = {'leopardus pardalis': .75, 'leopardus wiedii': .15, 'empty': .1}
    assert one(tax, row)[0] == 'leopardus' # .75 < .8: rolled up (Leopardus .9)
    assert one(tax, row, dets=box('animal', .25)) == ('leopardus pardalis', .75, 'classifier') # 4b
    assert one(tax, row, dets=box('animal', .2))[0] == 'leopardus' # 4b's box must be above .2
    assert one(tax, {'leopardus pardalis': .81, 'empty': .19}) == ('leopardus pardalis', .81, 'classifier') # 4a

def test_rules_are_named_parameters(tax):
    row = {'leopardus pardalis': .75, 'leopardus wiedii': .15, 'empty': .1}
    assert one(tax, row, rules=SpeciesNetRules(species_sure=.7))[0] == 'leopardus pardalis'

# ---------------------------------------------------------------- geofence

GEO = {JAGUAR: {'allow': {'BRA': [], 'USA': ['AZ', 'NM']}},
       FELIDAE: {'allow': {'BRA': [], 'USA': []}, 'block': {'USA': ['HI']}},
       'mammalia;carnivora;felidae;puma;concolor': {'block': {'GBR': []}}}

@pytest.mark.parametrize('key,country,admin1,blocked', [
    (JAGUAR, 'BRA', None, False), (JAGUAR, 'KEN', None, True), # allow: only listed countries
    (JAGUAR, 'USA', 'AZ', False), (JAGUAR, 'USA', 'NY', True), # allow with admin1 regions
    (JAGUAR, 'USA', None, False), (JAGUAR, None, None, False), # unknown admin1 / country: allowed
    (FELIDAE, 'USA', 'HI', True), (FELIDAE, 'USA', 'CA', False), # block of one region
    ('mammalia;carnivora;felidae;puma;concolor', 'GBR', None, True), ('mammalia;carnivora;felidae;puma;concolor', 'GBR', 'X', True),
    ('mammalia;carnivora;felidae;puma;concolor', 'FRA', None, False), # block of a whole country
    ('mammalia;rodentia;dasyproctidae;dasyprocta;punctata', 'KEN', None, False)]) # no entry
def test_allow_and_block_rules(key, country, admin1, blocked):
    assert is_blocked(key, country, admin1, GEO) is blocked

def test_blocked_species_rolls_up_to_nearest_allowed_ancestor(tax):
    row = {'panthera onca': .85, 'leopardus pardalis': .1, 'empty': .05}
    assert one(tax, row, places=place('USA', 'AZ'), geofence=GEO) == ('panthera onca', .85, 'classifier')
    name, score, src = one(tax, row, places=place('USA', 'NY'), geofence=GEO) # jaguar blocked, Felidae allowed in the USA
    assert (name, src) == ('felidae', 'classifier+geofence+rollup_to_family') and score == pytest.approx(.95)
    name, score, src = one(tax, row, places=place('KEN'), geofence=GEO) # jaguar and Felidae blocked; Carnivora has no rule
    assert (name, src) == ('carnivora', 'classifier+geofence+rollup_to_order') and score == pytest.approx(.95)
    assert one(tax, row, places=place('KEN'))[0] == 'panthera onca' # no geofence given: off

def test_geofence_rollup_must_reach_the_species_score(tax):
    # jaguar .82 blocked; an allowed ancestor's sum must reach .82 (top score - 1e-10), from family upwards
    g = {JAGUAR: {'block': {'BRA': []}}, 'mammalia;carnivora;;;': {'block': {'BRA': []}}}
    row = {'panthera onca': .82, 'tayassu pecari': .1, 'empty': .08}
    name, score, src = one(tax, row, places=place('BRA'), geofence=g) # Felidae .82 passes .82 - 1e-10
    assert (name, src, score) == ('felidae', 'classifier+geofence+rollup_to_family', pytest.approx(.82))
    g[FELIDAE] = {'block': {'BRA': []}}
    name, score, src = one(tax, row, places=place('BRA'), geofence=g) # Carnivora blocked too: Mammalia .92
    assert (name, src, score) == ('mammalia', 'classifier+geofence+rollup_to_class', pytest.approx(.92))

def test_geofence_rollup_threshold_is_the_top_score_not_the_rollup_one(tax):
    # with rule 4a lowered to .5, a blocked .55 jaguar rolls up to Felidae at .6: enough to reach its own .55, though below .65
    row, r = {'panthera onca': .55, 'leopardus pardalis': .05, 'empty': .4}, SpeciesNetRules(species_sure=.5)
    name, score, src = one(tax, row, places=place('BRA'), geofence={JAGUAR: {'block': {'BRA': []}}}, rules=r)
    assert (name, src, score) == ('felidae', 'classifier+geofence+rollup_to_family', pytest.approx(.6))

def test_geofence_rollup_failed_is_unknown(tax):
    g = {k: {'block': {'BRA': []}} for k in (JAGUAR, FELIDAE, CARNIVORA, 'mammalia;;;;', ';;;;')}
    assert one(tax, {'panthera onca': .9, 'empty': .1}, places=place('BRA'), geofence=g) == ('unknown', .9, 'classifier+geofence+rollup_failed')

def test_rollup_skips_blocked_ancestors(tax):
    g = {'mammalia;carnivora;felidae;leopardus;': {'allow': {'PER': []}}}
    p = probs(tax, {'leopardus pardalis': .4, 'leopardus wiedii': .35, 'puma concolor': .15, 'empty': .1})
    assert roll_up(p, tax).iloc[0]['name'] == 'leopardus'
    r = roll_up(p, tax, places=place('BRA'), geofence=g).iloc[0] # Leopardus not allowed in Brazil: Felidae .9
    assert (r['name'], r.score) == ('felidae', pytest.approx(.9))

def test_vectorized_rows_do_not_leak(tax):
    "Each image decided alone gives what it gets in a batch with others (places, boxes, geofence mixed)."
    rng = np.random.default_rng(3)
    p = pd.DataFrame(rng.dirichlet(np.full(len(tax), .3), 60), index=[f'i{i}' for i in range(60)], columns=tax.category_id.tolist())
    pl = pd.DataFrame({'country': rng.choice(['BRA', 'USA', 'KEN', None], 60), 'admin1': rng.choice(['AZ', 'NY', None], 60)}, index=p.index)
    d = pd.DataFrame({'image_id': p.index, 'category': rng.choice(['animal', 'person', 'vehicle'], 60), 'conf': rng.uniform(0, 1, 60)})
    batch = speciesnet_decide(p, tax, pl, GEO, d)
    alone = pd.concat([speciesnet_decide(p.loc[[i]], tax, pl.loc[[i]], GEO, d[d.image_id == i]) for i in p.index])
    pd.testing.assert_frame_equal(batch, alone)
    assert batch.source.nunique() > 3 # the rows exercise several rules

# ---------------------------------------------------------------- geofence files and training geofence

def test_geofence_file_round_trip(tmp_path):
    fn = write_geofence(GEO, tmp_path/'geofence.json')
    assert read_geofence(fn) == GEO
    assert list(json.loads(fn.read_text())) == sorted(GEO) # keys sorted, as SpeciesNet's build script writes them

@pytest.mark.parametrize('text,field', [
    ('{"a;b;c;d;e": {"allow": {"KEN": []}', 'line 1'), # not JSON
    ('[1, 2]', '-'),
    ('{"Mammalia;carnivora;felidae;panthera;onca": {}}', "'Mammalia"), # capitals never match SpeciesNet's labels
    ('{"mammalia;carnivora;felidae;panthera": {}}', "'mammalia;carnivora;felidae;panthera'"), # 4 parts
    ('{"a;b;c;d;e": {"deny": {"KEN": []}}}', 'a;b;c;d;e.deny'),
    ('{"a;b;c;d;e": {"allow": {"KE": []}}}', 'a;b;c;d;e.allow.KE'), # ISO2, not ISO3
    ('{"a;b;c;d;e": {"block": {"KEN": "NY"}}}', 'a;b;c;d;e.block.KEN'),
    ('{"a;b;c;d;e": {"block": ["KEN"]}}', 'a;b;c;d;e.block'),
    ('{"a;b;c;d;e": "allow"}', 'a;b;c;d;e')])
def test_malformed_geofence_file_is_an_input_error(tmp_path, text, field):
    fn = tmp_path/'geofence.json'; fn.write_text(text)
    with pytest.raises(InputError) as e: read_geofence(fn)
    assert e.value.path == str(fn) and e.value.field.startswith(field)

def test_geofence_from_training(tax):
    seen = pd.DataFrame({'name': ['panthera onca']*3 + ['leopardus pardalis', 'empty', 'puma concolor', 'puma concolor'],
                         'country': ['BRA', 'BRA', 'USA', 'PER', 'KEN', 'USA', None], 'admin1': [None, None, 'AZ', None, None, 'CA', None]})
    g = geofence_from_training(seen, tax)
    assert g[JAGUAR] == {'allow': {'BRA': [], 'USA': []}}
    assert g[FELIDAE] == {'allow': {'BRA': [], 'USA': [], 'PER': []}} and set(g[CARNIVORA]['allow']) == {'BRA', 'USA', 'PER'}
    assert ';;;;' not in g and 'mammalia;carnivora;felidae;puma;concolor' in g # empty: no entry; rows without a country ignored
    assert geofence_from_training(seen, tax, by_admin1=True)[JAGUAR]['allow'] == {'BRA': [], 'USA': ['AZ']}
    g2 = geofence_from_training(seen, tax, min_images=2) # only the jaguar has 2 images in one country (BRA)
    assert set(g2) == {JAGUAR, 'mammalia;carnivora;felidae;panthera;', FELIDAE, CARNIVORA, 'mammalia;;;;'} and g2[FELIDAE] == {'allow': {'BRA': []}}
    assert is_blocked(JAGUAR, 'PER', None, g) and not is_blocked(FELIDAE, 'PER', None, g)
    with pytest.raises(InputError, match="class 'lion': not in the taxonomy"): geofence_from_training(pd.DataFrame({'name': ['lion'], 'country': ['KEN']}), tax)

# ---------------------------------------------------------------- taxonomy table and labels

def test_taxonomy_csv_and_its_errors(tmp_path, tax):
    fn = tmp_path/'tax.csv'
    pd.DataFrame(ROWS, columns=COLS).assign(genus=lambda d: d.genus.str.title()).to_csv(fn, index=False)
    pd.testing.assert_frame_equal(read_taxonomy(fn), tax) # levels lowercased
    bad = pd.DataFrame(ROWS, columns=COLS); bad.loc[3, 'family'] = ''
    bad.to_csv(fn, index=False)
    with pytest.raises(InputError, match=r"tax.csv: row 'leopardus pardalis'.genus: given while a higher level is empty"): read_taxonomy(fn)
    pd.DataFrame(ROWS, columns=COLS).drop(columns='name').to_csv(fn, index=False)
    with pytest.raises(InputError, match='tax.csv: name: required column is missing'): read_taxonomy(fn)
    pd.DataFrame(ROWS + ROWS[-1:], columns=COLS).to_csv(fn, index=False)
    with pytest.raises(InputError, match="'human' appears twice"): read_taxonomy(fn)
    fn.write_text('')
    with pytest.raises(InputError, match='empty file'): read_taxonomy(fn)
    with pytest.raises(InputError, match='file not found'): read_taxonomy(tmp_path/'none.csv')

def test_taxonomy_from_coco_categories(tmp_path):
    cats = [{'id': 24, 'name': 'Panthera onca', 'class': 'Mammalia', 'order': 'Carnivora', 'family': 'Felidae', 'genus': 'Panthera',
             'specific_epithet': 'onca', 'common_name': 'Jaguar'}, {'id': 0, 'name': 'empty'}]
    fn = tmp_path/'train.json'; fn.write_text(json.dumps({'images': [], 'categories': cats}))
    t = read_taxonomy(fn)
    assert t.iloc[0][['category_id', 'genus', 'species', 'common_name']].tolist() == [24, 'panthera', 'onca', 'jaguar']
    assert t.iloc[1][['class', 'species']].tolist() == ['', '']
    fn.write_text(json.dumps({'images': []}))
    with pytest.raises(InputError, match='train.json: categories: required field is missing'): read_taxonomy(fn)
    fn.write_text(json.dumps({'categories': [{'id': 1}]}))
    with pytest.raises(InputError, match=r'categories\[0\].name'): read_taxonomy(fn)

def test_speciesnet_labels_round_trip(tmp_path, tax):
    labels = to_speciesnet_labels(tax)
    assert labels[5].split(';')[1:] == ['mammalia', 'carnivora', 'felidae', 'panthera', 'onca', 'jaguar']
    assert labels[5] == to_speciesnet_labels(tax)[5] # stable uuid
    fn = tmp_path/'taxonomy_release.txt'; fn.write_text('\n'.join(labels) + '\n')
    back = read_taxonomy(fn)
    assert taxon_keys(back).tolist() == taxon_keys(tax).tolist() and to_speciesnet_labels(back).tolist() == labels.tolist()
    assert from_speciesnet_labels([SPECIESNET['human']])['genus'].iloc[0] == 'homo'
    with pytest.raises(InputError, match='line 2: expected 7'): from_speciesnet_labels([SPECIESNET['human'], 'x;mammalia;lion'])

def test_ancestors_and_nodes(tax):
    assert [ancestor_key(JAGUAR, l) for l in ('genus', 'family', 'order', 'class', 'kingdom')] == \
        ['mammalia;carnivora;felidae;panthera;', FELIDAE, CARNIVORA, 'mammalia;;;;', ';;;;']
    assert ancestor_key(';;;;', 'kingdom') is None and ancestor_key('aves;tinamiformes;tinamidae;;', 'genus') is None
    n = taxon_nodes(tax)
    assert n.loc[JAGUAR, 'category_id'] == 24 and pd.isna(n.loc[FELIDAE, 'category_id']) and n.loc[FELIDAE, 'name'] == 'felidae'

def test_probs_columns_must_be_in_the_taxonomy(tax):
    p = probs(tax, {'empty': 1.}).rename(columns={0: 99})
    with pytest.raises(InputError, match='probs: class 99: not in the taxonomy'): speciesnet_decide(p, tax)

# ---------------------------------------------------------------- country from coordinates

def test_locate_countries_offline():
    pytest.importorskip('reverse_geocoder'); pytest.importorskip('pycountry')
    locs = pd.DataFrame({'latitude': [31.9, -1.3, 18.2, None, 38.9], 'longitude': [-110.9, 36.8, -66.5, None, -77.03]}, index=[1, 2, 3, 4, 5])
    out = locate(locs)
    assert out.country.tolist() == ['USA', 'KEN', 'PRI', None, 'USA'] # Puerto Rico is its own country code, as in SpeciesNet
    assert out.admin1.tolist() == ['AZ', None, None, None, 'DC'] # admin1 only in the USA; D.C. by reverse_geocoder's spelling
    assert locate(locs.assign(country=['MEX', None, None, None, None])).loc[1, ['country', 'admin1']].tolist() == ['MEX', None]
    with pytest.raises(InputError, match='off the globe'): locate(locs.assign(longitude=[200, 0, 0, 0, 0]))
    with pytest.raises(InputError, match='locations: latitude: required column is missing'): locate(locs.drop(columns='latitude'))

# ---------------------------------------------------------------- gps_locations.json, and the sample's places and taxonomy

def test_gps_file(tmp_path):
    fn = tmp_path/'gps_locations.json'
    fn.write_text(json.dumps({'181': {'latitude': 12.733811, 'longitude': -85.387926}, '7': {'latitude': -7, 'longitude': 34.6, 'x': 1}}))
    g = load_gps_locations(fn)
    assert g.columns.tolist() == ['location', 'latitude', 'longitude'] and g.location.tolist() == ['181', '7']
    assert g.latitude.tolist() == [12.733811, -7.0] and g.latitude.dtype == float
    fn.write_text('{}')
    assert load_gps_locations(fn).empty

@pytest.mark.parametrize('text,field', [
    ('{"5": {"latitude": 1', 'line 1'), # not JSON
    ('[{"latitude": 1, "longitude": 2}]', '-'), # a list, not keyed by location
    ('{"5": [1, 2]}', '5'),
    ('{"5": {"lat": 1, "longitude": 2}}', '5.latitude'),
    ('{"5": {"latitude": 1}}', '5.longitude'),
    ('{"5": {"latitude": "1.5", "longitude": 2}}', '5.latitude'), # a string
    ('{"5": {"latitude": null, "longitude": 2}}', '5.latitude'),
    ('{"5": {"latitude": 1, "longitude": false}}', '5.longitude'),
    ('{"5": {"latitude": -90.5, "longitude": 2}}', '5.latitude'),
    ('{"5": {"latitude": 1, "longitude": 181}}', '5.longitude')])
def test_malformed_gps_file_is_an_input_error(tmp_path, text, field):
    fn = tmp_path/'gps_locations.json'; fn.write_text(text)
    with pytest.raises(InputError) as e: load_gps_locations(fn)
    assert e.value.path == str(fn) and e.value.field.startswith(field)

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    "The default sample's six cameras (seed 0), with small, few frames."
    from iwildcam_nb.sample import make_sample
    return make_sample(tmp_path_factory.mktemp('sample')/'s', seed=0, width=64, height=48, seqs_per_location=1)

def test_sample_cameras_locate_to_their_countries_and_one_country_is_withheld(sample):
    pytest.importorskip('reverse_geocoder'); pytest.importorskip('pycountry')
    from iwildcam_nb.data import load_coco
    from iwildcam_nb.sample import SAMPLE_FILES
    truth = pd.read_csv(sample/SAMPLE_FILES['places'], dtype={'location': str})
    cams = set(pd.concat([load_coco(sample/SAMPLE_FILES[k]).images.location for k in ('train', 'test')]))
    gps = locate(load_gps_locations(sample/SAMPLE_FILES['gps']))
    assert cams - set(gps.location) == set(truth[truth.withheld].location) != set() # the withheld cameras: no coordinates
    assert truth[truth.withheld].country.nunique() == 1 and set(truth[truth.withheld].split) == {'train', 'test'}
    listed = truth[~truth.withheld].set_index('location').country
    assert gps.set_index('location').country.to_dict() == listed.to_dict() and listed.nunique() >= 2

def test_sample_taxonomy_rolls_two_species_up_to_their_genus(sample):
    from iwildcam_nb.sample import SAMPLE_FILES
    tax = read_taxonomy(sample/SAMPLE_FILES['taxonomy'])
    assert tax.groupby('genus').size()['leopardus'] == 2
    p = pd.DataFrame([dict.fromkeys(tax.category_id, 0.) | {10: .45, 50: .35, 374: .2}], index=['photo'])
    r = roll_up(p, tax).iloc[0]
    assert (r['name'], r.source) == ('leopardus', 'classifier+rollup_to_genus') and r.score == pytest.approx(.8)

def test_import_stays_light():
    "Importing the stage pulls in neither torch/fastai nor the geocoder (loaded only when `locate` runs)."
    code = 'import sys, iwildcam_nb.taxonomy; print(sorted(m for m in ("torch", "fastai", "reverse_geocoder", "pycountry") if m in sys.modules))'
    assert subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip() == '[]'
