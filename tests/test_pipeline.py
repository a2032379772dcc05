"""`pipeline.run` on the tiny backbone: a test sequence none of whose photos can be read is answered as such, and the rest as usual."""
import os
import pandas as pd
import pytest

@pytest.fixture(scope='module')
def broken_run(tmp_path_factory):
    "A run over the embedded set (64x48 photos, tiny backbone, one epoch) where every photo of one test sequence is random bytes."
    from iwildcam_nb.sample import make_sample
    from iwildcam_nb.pipeline import sample_inputs, load_inputs, run, quick_config
    root = tmp_path_factory.mktemp('run')
    inp = sample_inputs(make_sample(root/'data', seed=3, width=64, height=48, seqs_per_location=2))
    test = load_inputs(inp).images.query("split == 'test'")
    bad = test.seq_id.iloc[0]
    for f in test.file_name[test.seq_id == bad]: (inp.test_images/f).write_bytes(os.urandom(300))
    cfg = quick_config(dict(arch='tiny', pretrained=False, size=32, frozen_epochs=0, epochs=1, bs=8), n_workers=0)
    run(inp, root/'out', cfg, show_progress=False)
    return root/'out', test, bad

def test_run_answers_a_sequence_whose_photos_all_fail(broken_run):
    from iwildcam_nb.outputs import NO_ANSWER
    out, test, bad = broken_run
    seq = pd.read_csv(out/'preds'/'seq_preds.csv', dtype={'seq_id': str})
    assert set(seq.seq_id) == set(test.seq_id)
    row = seq[seq.seq_id == bad]
    assert len(row) == 1 and row.source.iloc[0] == NO_ANSWER and row['count'].iloc[0] == 0
    assert (seq.source[seq.seq_id != bad] != NO_ANSWER).all()
    sub21 = pd.read_csv(out/'submission_2021.csv', dtype={'Id': str})
    assert len(sub21) == test.seq_id.nunique() and sub21.set_index('Id').loc[bad].drop('Predicted', errors='ignore').sum() == 0
    sub20 = pd.read_csv(out/'submission_2020.csv', dtype={'Id': str})
    assert set(sub20.Id) == set(test.image_id)
    assert bad in set(pd.read_csv(out/'sequences.csv', dtype={'seq_id': str}).seq_id)

def test_run_lists_every_failed_photo_with_its_reason(broken_run):
    "The run's failures.csv names each unreadable photo (stage 'read', and 'crop' for its boxes), and the MegaDetector file carries the same reason."
    import json
    out, test, bad = broken_run
    fails = pd.read_csv(out/'failures.csv', dtype=str)
    assert set(fails.image_id) == set(fails.image_id[fails.stage == 'read']) == set(test.image_id[test.seq_id == bad])
    assert set(fails.stage) <= {'read', 'crop'} # a photo that does not open has no crops either
    assert fails.reason.str.len().gt(0).all()
    md = {im['file']: im for im in json.loads((out/'megadetector_classified.json').read_text())['images']}
    bad_files = test.file_name[test.seq_id == bad]
    assert all('failure' in md[f] and md[f]['failure'].startswith('read: ') for f in bad_files)
