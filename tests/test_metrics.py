"""Metrics and submissions: MCRMSE by hand and against scikit-learn, submission round trips, the real 2020 sample
submission's format, and a clear `InputError` for each kind of bad input."""
import subprocess, sys
import numpy as np
import pandas as pd
import pytest
from conftest import shared_dir
from iwildcam_nb.core import InputError
from iwildcam_nb.vocab import EMPTY
from iwildcam_nb.metrics import (species_ids, check_counts, counts_from_seq_preds, counts_from_truth, align_counts,
    column_rmse, mcrmse, scrsse, accuracy, seq_labels, seq_pred_labels, image_accuracy, seq_accuracy, top_k_error,
    sequences_to_submit, counts_to_submission, submission_2021, submission_2020, read_submission, write_submission,
    read_truth, score, format_scores, SUB2020_COLS)

VOCAB = [0, 1, 2, 5]

def matrix(rows:dict, cols=(1, 2)):
    "A counts matrix from {seq_id: [counts...]}."
    return pd.DataFrame.from_dict(rows, orient='index', columns=list(cols)).rename_axis('seq_id')

@pytest.fixture
def hand():
    "Predicted and true counts of four sequences, species 1 and 2 (vocabulary 0, 1, 2, 5)."
    pred = matrix({'s1': [3, 0], 's2': [0, 0], 's3': [1, 1], 's4': [0, 0]})
    truth = matrix({'s1': [1, 0], 's2': [0, 2], 's3': [1, 0], 's4': [0, 0]})
    return pred, truth

# ---- MCRMSE / SCRSSE -------------------------------------------------------------------------------------------

def test_mcrmse_by_hand(hand):
    # errors x - y per sequence (s1..s4):   species 1: 2, 0, 0, 0    species 2: 0, -2, 1, 0    species 5: all 0
    # column RMSE: species 1 sqrt((4+0+0+0)/4) = 1;  species 2 sqrt((0+4+1+0)/4) = sqrt(1.25) = 1.118034;  species 5: 0
    # MCRMSE over the 3 species of the vocabulary (0 = empty is no column): (1 + 1.118034 + 0)/3 = 0.706011
    # over only the 2 columns present (no vocabulary given):              (1 + 1.118034)/2     = 1.059017
    # SCRSSE = sqrt(4) + sqrt(5) + 0 = 4.236068 = m * sqrt(n) * MCRMSE = 3 * 2 * 0.706011
    pred, truth = hand
    assert mcrmse(pred, truth, VOCAB) == pytest.approx(0.706011, abs=1e-6)
    assert mcrmse(pred, truth) == pytest.approx(1.059017, abs=1e-6)
    assert scrsse(pred, truth, VOCAB) == pytest.approx(4.236068, abs=1e-6)
    assert column_rmse(pred, truth, VOCAB).to_dict() == pytest.approx({1: 1.0, 2: 1.118034, 5: 0.0}, abs=1e-6)

def test_mcrmse_matches_sklearn():
    from sklearn.metrics import mean_squared_error
    rng = np.random.default_rng(1)
    n, sp = 500, [3, 7, 10, 83, 90]
    idx = pd.Index([f'seq{i}' for i in range(n)], name='seq_id')
    truth = pd.DataFrame(rng.poisson(.4, (n, len(sp))), index=idx, columns=sp)
    pred = pd.DataFrame(rng.poisson(.5, (n, len(sp))), index=idx, columns=sp).sample(frac=1, random_state=0) # shuffled rows
    p = pred.reindex(idx)
    per_col = [np.sqrt(mean_squared_error(truth[c], p[c])) for c in sp]
    assert mcrmse(pred, truth) == pytest.approx(np.mean(per_col), rel=1e-12)
    assert column_rmse(pred, truth).tolist() == pytest.approx(per_col, rel=1e-12)
    assert scrsse(pred, truth) == pytest.approx(len(sp)*np.sqrt(n)*np.mean(per_col), rel=1e-12)
    assert mcrmse(truth, truth) == 0

def test_columns_zero_filled_or_refused(hand):
    pred, truth = hand
    only1 = pred[[1]] # nobody predicted species 2: a column of zeros
    assert mcrmse(only1, truth, VOCAB) == pytest.approx(mcrmse(only1.assign(**{'2': 0}), truth, VOCAB))
    assert align_counts(only1, truth, VOCAB)[2] == [1, 2, 5]
    with pytest.raises(InputError, match='category 7 is not in the vocabulary'): mcrmse(pred.assign(**{'7': 0}), truth, VOCAB)
    with pytest.raises(InputError, match=r'category 0 \(empty\) is not a count column'): mcrmse(pred.assign(**{'0': 0}), truth)
    with pytest.raises(InputError, match='not a category id'): mcrmse(pred.assign(foo=0), truth)

def test_sequences_must_match(hand):
    pred, truth = hand
    with pytest.raises(InputError, match="predictions: seq_id: sequence 's4' of the truth has no prediction"): mcrmse(pred.iloc[:3], truth)
    with pytest.raises(InputError, match="sequence 'zz' is not in the truth"): mcrmse(pd.concat([pred, matrix({'zz': [0, 0]})]), truth)
    with pytest.raises(InputError, match="sequence 's1' appears twice"): mcrmse(pd.concat([pred, pred.iloc[:1]]), truth)
    with pytest.raises(InputError, match='nothing to score'): mcrmse(pred.iloc[:0], truth.iloc[:0])

def test_counts_must_be_numbers(hand):
    pred, truth = hand
    def with_col1(values):
        p = pred.astype(object)
        p[1] = values
        return p
    with pytest.raises(InputError, match="'s2': missing or non-numeric count"): mcrmse(with_col1([3, 'x', 1, 0]), truth)
    with pytest.raises(InputError, match="'s3': negative count"): mcrmse(with_col1([3, 0, -1, 0]), truth)
    with pytest.raises(InputError, match='missing or non-numeric'): mcrmse(with_col1([3, np.nan, 1, 0]), truth)
    assert mcrmse(pred + .5, truth) > 0 # expected (fractional) counts may be scored...
    with pytest.raises(InputError, match='not an integer'): check_counts(pred + .5) # ...but a submission holds integers

# ---- long tables -> counts matrix --------------------------------------------------------------------------------

def test_counts_from_seq_preds_matches_loop():
    rng = np.random.default_rng(2)
    rows = [(f's{i}', c, int(rng.integers(1, 5))) for i in range(300) for c in rng.choice([3, 10, 83], rng.integers(0, 3), replace=False)]
    rows += [(f's{i}', 0, 0) for i in range(300) if not any(r[0] == f's{i}' for r in rows)]
    sp = pd.DataFrame(rows, columns=['seq_id', 'category_id', 'count']).sample(frac=1, random_state=0)
    m = counts_from_seq_preds(sp, species=[0, 3, 10, 83, 90])
    assert list(m.columns) == [3, 10, 83, 90] and len(m) == 300
    for s, c, n in rows: assert m.loc[s, c] == n if c != EMPTY else m.loc[s].sum() == 0
    assert m.to_numpy().sum() == sum(r[2] for r in rows)

def test_long_table_errors():
    sp = pd.DataFrame({'seq_id': ['a', 'a', 'b'], 'category_id': [3, 3, 0], 'count': [1, 2, 0]})
    with pytest.raises(InputError, match="'a': category 3 appears twice"): counts_from_seq_preds(sp)
    with pytest.raises(InputError, match='category 3 is not in the vocabulary'): counts_from_seq_preds(sp.iloc[1:], species=[0, 10])
    with pytest.raises(InputError, match=r"'b': category 0 \(empty\) must have count 0"): counts_from_seq_preds(sp.iloc[1:].assign(count=[2, 1]))
    with pytest.raises(InputError, match='count: required column is missing'): counts_from_seq_preds(sp.drop(columns='count'))
    with pytest.raises(InputError, match="no rows with split 'test'"): counts_from_truth(sp.iloc[1:].assign(split='train'))

# ---- accuracy and top-k ------------------------------------------------------------------------------------------

def test_accuracies():
    images = pd.DataFrame({'image_id': list('pqrst'), 'seq_id': ['A', 'A', 'A', 'B', 'C']})
    labels = pd.DataFrame({'image_id': list('pqrst'), 'category_id': [0, 10, 10, 0, 3]})
    assert seq_labels(labels, images).to_dict() == {'A': 10, 'B': 0, 'C': 3} # an animal in any frame labels the sequence
    sp = pd.DataFrame({'seq_id': ['A', 'A', 'B', 'C'], 'category_id': [10, 3, 0, 10], 'count': [1, 1, 0, 2], 'score': [.9, .4, .8, .7]})
    assert seq_pred_labels(sp).to_dict() == {'A': 10, 'B': 0, 'C': 10} # tie on count: the higher score
    assert seq_accuracy(sp, labels, images) == pytest.approx(2/3)
    ip = pd.DataFrame({'image_id': list('pqrst'), 'label': [0, 10, 3, 0, 3]})
    assert image_accuracy(ip, labels) == pytest.approx(.8)
    with pytest.raises(InputError, match="'p' of the truth has no prediction"): image_accuracy(ip.iloc[1:], labels)
    with pytest.raises(InputError, match="'q' appears twice"): image_accuracy(pd.concat([ip, ip.iloc[1:2]]), labels)
    with pytest.raises(InputError, match="image 't' has no label"): seq_accuracy(sp, labels.iloc[:4], images)
    with pytest.raises(InputError, match='non-numeric'): accuracy(pd.Series(['x'], index=['p']), pd.Series([1], index=['p']))

def test_top_k_error_and_bad_probs():
    rng = np.random.default_rng(3)
    v = [0, 3, 10, 83, 90, 374]
    a = rng.dirichlet(np.ones(len(v)), 200)
    probs = pd.DataFrame(a, columns=v, index=pd.Index([f'i{i}' for i in range(200)], name='image_id'))
    truth = pd.Series(rng.choice(v, 200), index=probs.index)
    rank = (a > a[np.arange(200), [v.index(t) for t in truth]][:, None]).sum(1) # classes more probable than the true one
    for k in (1, 2, 5): assert top_k_error(probs, truth, v, k) == pytest.approx((rank >= k).mean())
    assert top_k_error(probs, truth, v, k=6) == 0
    assert top_k_error(probs, truth.where(truth.index != 'i0', 999), v, k=6) == pytest.approx(1/200) # unknown label: wrong
    with pytest.raises(InputError, match="row 'i0'.*not 1"): top_k_error(probs*2, truth, v)
    with pytest.raises(InputError, match='category 7 is not in the vocabulary'): top_k_error(probs.rename(columns={374: 7}), truth, v)
    with pytest.raises(InputError, match="'i199' of the truth has no prediction"): top_k_error(probs.iloc[:-1], truth, v)

# ---- submissions ---------------------------------------------------------------------------------------------------

@pytest.fixture
def seq_preds():
    return pd.DataFrame({'seq_id': ['a', 'a', 'b', 'c'], 'category_id': [3, 10, 0, 10], 'count': [2, 1, 0, 4],
                         'score': [.9, .6, .8, .7], 'source': 'vote'})

def test_submission_2021_round_trip(tmp_path, seq_preds):
    images = pd.DataFrame({'seq_id': ['c', 'c', 'x', 'a', 'b'], 'split': ['test', 'test', 'train', 'test', 'test']})
    seqs = sequences_to_submit(images)
    assert seqs == ['c', 'a', 'b']
    sub = submission_2021(seq_preds, seqs, [0, 3, 10, 83])
    fn = write_submission(sub, tmp_path/'sub.csv')
    lines = fn.read_text().splitlines()
    assert lines[0] == 'Id,Predicted3,Predicted10,Predicted83' # training categories, 0 (empty) has no column
    assert lines[1:] == ['c,0,4,0', 'a,2,1,0', 'b,0,0,0'] # test order; the empty sequence is a row of zeros
    back = read_submission(fn)
    assert back.attrs['format'] == '2021' and back.index.name == 'seq_id'
    pd.testing.assert_frame_equal(back, counts_from_seq_preds(seq_preds, [3, 10, 83]).reindex(seqs), check_names=False)
    with pytest.raises(InputError, match="'d' of the truth has no prediction"): submission_2021(seq_preds, seqs + ['d'], [0, 3, 10, 83])
    with pytest.raises(InputError, match='category 10 is not in the vocabulary'): submission_2021(seq_preds, seqs, [0, 3])

def test_submission_2020_round_trip(tmp_path, seq_preds):
    images = pd.DataFrame({'image_id': ['i1', 'i2', 'i3', 'i4'], 'seq_id': ['b', 'a', 'a', 'c']})
    sub = submission_2020(seq_pred_labels(seq_preds), images)
    fn = write_submission(sub, tmp_path/'sub.csv')
    assert fn.read_text().splitlines() == ['Id,Category', 'i1,0', 'i2,3', 'i3,3', 'i4,10']
    back = read_submission(fn)
    assert back.attrs['format'] == '2020' and back.category_id.to_dict() == {'i1': 0, 'i2': 3, 'i3': 3, 'i4': 10}
    (tmp_path/'readme.csv').write_text('id,animal_class\ni1,0\n') # the header the 2019/2020 readmes show
    assert read_submission(tmp_path/'readme.csv').attrs['format'] == '2020'

@pytest.fixture
def real_2020_sample():
    "The Kaggle iWildCam 2020 sample submission, from ../shared (skips when absent)."
    return shared_dir('iwildcam_docs')/'hadarakdev_iwildcam2020'/'iwildcam2020_sample_submission.csv'

def test_2020_format_matches_real_sample(tmp_path, real_2020_sample):
    real_head = real_2020_sample.read_text().splitlines()[:2]
    real = read_submission(real_2020_sample)
    assert real.attrs['format'] == '2020' and len(real) > 60000 and real.index.is_unique
    images = pd.DataFrame({'image_id': ['873ff218-21bc-11ea-a13a-137349068a90', '884103be-21bc-11ea-a13a-137349068a90'], 'seq_id': ['s', 's']})
    ours = write_submission(submission_2020(pd.Series({'s': 3}), images), tmp_path/'ours.csv').read_text().splitlines()
    assert ours[0] == real_head[0] == ','.join(SUB2020_COLS)
    shape = lambda s: pd.Series(s).str.replace('[0-9a-f]', 'h', regex=True)
    assert set(shape(real.index)) == {'hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh'} # image ids are lower-case UUIDs
    assert shape([ours[1].split(',')[0]]).iloc[0] == 'hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh'
    assert real_head[1].split(',')[1].isdigit() and ours[1].split(',')[1].isdigit() # integer category ids

@pytest.mark.parametrize('text,msg', [
    ('Id,3\na,1\n', "column '3': bad header"),
    ('seq_id,count\na,1\n', 'bad header seq_id,count'),
    ('Id,Predicted3\na,1.5\n', "counts of 'a': count is not an integer"),
    ('Id,Predicted3\na,-1\n', "counts of 'a': negative count"),
    ('Id,Predicted3\na,two\n', "counts of 'a': missing or non-numeric count"),
    ('Id,Predicted3\na,\n', "counts of 'a': missing or non-numeric count"),
    ('Id,Predicted3\na,1\na,0\n', "sequence 'a' appears twice"),
    ('Id,Predicted3,Predicted3\na,1,1\n', "header: column 'Predicted3' appears twice"),
    ('Id,Predicted0,Predicted3\na,0,1\n', r'category 0 \(empty\) is not a count column'),
    ('Id,Category\nimg,-2\n', "Category of 'img': negative count"),
    ('Id,Category\nimg,1\nimg,2\n', "Id: 'img' appears twice"),
    ('Id,Category\n,1\n', 'empty Id in row 2'),
    ('', 'empty file'),
])
def test_read_submission_errors(tmp_path, text, msg):
    fn = tmp_path/'bad.csv'
    fn.write_text(text)
    with pytest.raises(InputError, match=msg) as e: read_submission(fn)
    assert str(e.value).startswith(str(fn)) # the message names the file

def test_write_submission_refuses_bad_table(tmp_path):
    bad = pd.DataFrame({'Id': ['a', 'a'], 'Predicted3': [1, 2]})
    with pytest.raises(InputError, match="sequence 'a' appears twice"): write_submission(bad, tmp_path/'s.csv')
    assert not (tmp_path/'s.csv').exists()
    with pytest.raises(InputError, match='file not found'): read_submission(tmp_path/'missing.csv')

# ---- score ---------------------------------------------------------------------------------------------------------

def test_score_against_each_truth_form(tmp_path, hand):
    pred, truth = hand
    sub = write_submission(counts_to_submission(pred, list(pred.index), VOCAB), tmp_path/'sub.csv')
    t2021 = write_submission(counts_to_submission(truth, list(truth.index), VOCAB), tmp_path/'t2021.csv')
    long = truth.stack().rename('count').reset_index().set_axis(['seq_id', 'category_id', 'count'], axis=1)
    long = pd.concat([long[long['count'] > 0], pd.DataFrame({'seq_id': ['s4'], 'category_id': [0], 'count': [0]}),
                      pd.DataFrame({'seq_id': ['other'], 'category_id': [2], 'count': [1]})]) # 'other' is a train sequence
    long['split'] = np.where(long.seq_id == 'other', 'train', 'test')
    long.to_csv(tmp_path/'counts.csv', index=False)
    for tru in (t2021, tmp_path/'counts.csv'):
        res = score(sub, tru)
        assert res['MCRMSE'] == pytest.approx(0.706011, abs=1e-6) and res['SCRSSE'] == pytest.approx(4.236068, abs=1e-6)
        assert res['sequences'] == 4 and res['species columns'] == 3
    assert read_truth(tmp_path/'counts.csv', split=None).shape == (5, 2)
    assert 'MCRMSE' in format_scores(res) and '0.7060' in format_scores(res)
    with pytest.raises(InputError, match="'other' of the truth has no prediction"): score(sub, tmp_path/'counts.csv', split='train')

def test_score_errors(tmp_path, hand):
    pred, truth = hand
    sub = write_submission(counts_to_submission(pred, list(pred.index), [0, 1, 2]), tmp_path/'sub.csv')
    t = write_submission(counts_to_submission(truth.assign(**{'5': 1}), list(truth.index), VOCAB), tmp_path/'t.csv')
    with pytest.raises(InputError, match='category 5 has no column in'): score(sub, t) # the truth has a species the submission lacks
    t3 = write_submission(counts_to_submission(truth.iloc[:3], list(truth.index[:3]), [0, 1, 2]), tmp_path/'t3.csv')
    with pytest.raises(InputError, match="sequence 's4' is not in the truth"): score(sub, t3)
    labels = write_submission(pd.DataFrame({'Id': ['i1'], 'Category': [3]}), tmp_path/'labels.csv')
    with pytest.raises(InputError, match='truth is in the 2020 format'): score(sub, labels)

def test_score_2020(tmp_path):
    sub = write_submission(pd.DataFrame({'Id': ['i1', 'i2', 'i3', 'i4'], 'Category': [3, 0, 3, 10]}), tmp_path/'sub.csv')
    pd.DataFrame({'image_id': ['i4', 'i3', 'i2', 'i1'], 'category_id': [10, 3, 3, 3]}).to_csv(tmp_path/'labels.csv', index=False)
    res = score(sub, tmp_path/'labels.csv')
    assert res['accuracy'] == pytest.approx(.75) and res['images'] == 4

def test_score_on_embedded_sample(tmp_path):
    from iwildcam_nb.sample import make_sample, read_sample, SAMPLE_FILES
    from iwildcam_nb.vocab import class_vocab
    d = read_sample(make_sample(tmp_path/'data'))
    vocab, seqs = class_vocab(d['categories']), sequences_to_submit(d['images'])
    truth = counts_from_truth(d['counts'], 'test', vocab)
    assert set(seqs) == set(truth.index)
    plus1 = truth + 1 # one extra individual of every species in every sequence: each column's RMSE is exactly 1
    sub = write_submission(counts_to_submission(plus1, seqs, vocab), tmp_path/'sub.csv')
    res = score(sub, tmp_path/'data'/SAMPLE_FILES['counts'])
    assert res['MCRMSE'] == pytest.approx(1) and res['species columns'] == len(vocab) - 1
    assert res['SCRSSE'] == pytest.approx((len(vocab) - 1)*np.sqrt(len(seqs)))

def test_metrics_imports_stay_light():
    code = ("import sys, iwildcam_nb.metrics; bad = [m for m in ('torch', 'fastai', 'sklearn') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, '-c', code], check=True)

def test_species_ids():
    assert species_ids([374, 0, 3]) == [3, 374]
