"""Training that fits the data: the head strategy on the repo's real photos against the practitioner's baseline,
the feature cache, the strategy choice, validation that spares small classes, and the `train` command's options."""
import json, logging, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from conftest import REAL
from iwildcam_nb.items import add_valid
from iwildcam_nb.models import quick_recipe, train, FEATURE_CACHE
from iwildcam_nb.predict import model_probs
from iwildcam_nb.preprocess import resize_images

torch = pytest.importorskip('torch')

@pytest.fixture(scope='module')
def ena24(tmp_path_factory):
    "The 21 real ENA24 photos (7 species) resized to 256 px as `run` does, their tables, and a fold per photo."
    root = tmp_path_factory.mktemp('ena24')
    lab = pd.read_csv(REAL/'ena24'/'labels.csv')
    resize_images(REAL/'ena24', root/'resized', size=256, n_workers=0, show_progress=False)
    names = sorted(lab.label.unique())
    ids = lab.filepath.str.rsplit('.', n=1).str[0]
    images = pd.DataFrame({'image_id': ids, 'file_name': lab.filepath, 'location': ids})
    labels = pd.DataFrame({'image_id': ids, 'category_id': lab.label.map(names.index) + 1})
    categories = pd.DataFrame({'category_id': range(1, len(names) + 1), 'name': names})
    return root, images, labels, categories, lab.groupby('label').cumcount().to_numpy()

def test_quick_training_matches_the_linear_probe_on_real_photos(ena24):
    "3 folds, 2 photos per species to train and 1 to test: `train --quick` against LogisticRegression on frozen features."
    from sklearn.linear_model import LogisticRegression
    from iwildcam_nb.backbones import embed_images
    root, images, labels, categories, fold = ena24
    torch.set_num_threads(1)
    paths = [root/'resized'/f for f in images.file_name]
    feats, y = embed_images(paths, 'tf_efficientnet_lite0', 224), labels.category_id.to_numpy()
    ours, base = [], []
    for k in range(3):
        tr, te = fold != k, fold == k
        base.append((LogisticRegression(max_iter=2000).fit(feats[tr], y[tr]).predict(feats[te]) == y[te]).mean())
        path = train('full', images[tr], labels[tr], categories, root/'resized', root/f'm{k}', quick_recipe('full'), show_progress=False)
        meta = json.loads(path.with_suffix('.json').read_text())
        assert meta['strategy'] == 'head' and meta['n_valid'] == 0 # 2 photos per class: all kept for training
        probs = model_probs(path, root/'resized', images=images[te], tta=False, show_progress=False)
        ours.append((probs.loc[images.image_id[te]].to_numpy().argmax(1) + 1 == y[te]).mean())
    chance = 1/7
    assert np.mean(ours) >= 2.5 * chance, (ours, base)
    assert np.mean(ours) >= np.mean(base) - 1/21 - 1e-9, (ours, base) # at most one photo of the 21 behind the baseline

def test_feature_cache_is_reused_and_refreshed(ena24, caplog):
    root, images, labels, categories, fold = ena24
    r = quick_recipe('full', arch='tiny', size=32, pretrained=False, strategy='head')
    with caplog.at_level(logging.INFO, logger='iwildcam_nb'):
        train('full', images, labels, categories, root/'resized', root/'cache', r, show_progress=False)
        assert 'features: 21 computed, 0 from the cache' in caplog.text
        caplog.clear()
        (root/'resized'/images.file_name[0]).touch() # a changed photo is computed again
        train('full', images, labels, categories, root/'resized', root/'cache', r, show_progress=False)
        assert 'features: 1 computed, 20 from the cache' in caplog.text
    assert len(list((root/'cache'/FEATURE_CACHE).glob('*.npz'))) == 1

def test_strategy_choice_and_override(ena24):
    root, images, labels, categories, fold = ena24
    many = pd.concat([images.assign(image_id=images.image_id + f'_{i}') for i in range(5)], ignore_index=True)
    lab5 = pd.concat([labels.assign(image_id=labels.image_id + f'_{i}') for i in range(5)], ignore_index=True)
    r = quick_recipe('full', arch='tiny', size=32, pretrained=False, finetune_min=10, frozen_epochs=0, epochs=1, valid_pct=0)
    meta = lambda p: json.loads(p.with_suffix('.json').read_text())
    m = meta(train('full', many, lab5, categories, root/'resized', root/'auto', r, show_progress=False))
    assert m['strategy'] == 'finetune' and '15 training photos per class >= 10' in m['strategy_reason']
    m = meta(train('full', many, lab5, categories, root/'resized', root/'forced', r, strategy='head', show_progress=False))
    assert m['strategy'] == 'head' and m['strategy_reason'].startswith('asked for')

def test_validation_spares_small_classes(caplog):
    items = pd.DataFrame({'location': list('aabbccddee'), 'category_id': [1, 1, 2, 2, 3, 3, 3, 3, 3, 3], 'path': 'x'})
    with caplog.at_level(logging.WARNING, logger='iwildcam_nb'):
        out = add_valid(items, valid_pct=0.4, seed=1, min_train=2)
    kept = out[~out.is_valid].category_id.value_counts()
    assert (kept.reindex([1, 2, 3]).fillna(0) >= 2).all() # no class loses its last training photos
    if out.is_valid.any(): assert 'no validation photo' in caplog.text
    assert not add_valid(items, valid_pct=0).is_valid.any()

def iwn(*args):
    exe = shutil.which('iwildcam-nb') or str(Path(sys.executable).parent/'iwildcam-nb')
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=600)

def test_train_command_options(ena24, tmp_path):
    root, images, labels, categories, fold = ena24
    coco = {'images': [{'id': i, 'file_name': f, 'location': i} for i, f in zip(images.image_id, images.file_name)],
            'annotations': [{'id': f'a{n}', 'image_id': i, 'category_id': int(c)} for n, (i, c) in enumerate(zip(labels.image_id, labels.category_id))],
            'categories': [{'id': int(c), 'name': n} for c, n in zip(categories.category_id, categories.name)]}
    (tmp_path/'coco.json').write_text(json.dumps(coco))
    h = iwn('train', '--help').stdout
    for opt in ('--quick', '--strategy', '--mixup', '--lr', '--epochs', '--workers', '--valid_pct', 'location'): assert opt in h, opt
    r = iwn('train', '--kind', 'full', '--folder', root/'resized', '--coco', tmp_path/'coco.json', '--out', tmp_path/'m', '--quick',
            '--arch', 'tiny', '--size', 32, '--no_pretrained', '--lr', 0.02, '--steps', 50, '--valid_pct', 0, '--quiet')
    assert r.returncode == 0, r.stderr
    assert 'head (median 3 training photos per class' in r.stdout and 'no validation photos' in r.stdout
    m = json.loads((tmp_path/'m'/'full.json').read_text())
    assert (m['recipe']['head_lr'], m['recipe']['head_steps'], m['recipe']['valid_pct']) == (0.02, 50, 0)
    r = iwn('train', '--kind', 'full', '--folder', root/'resized', '--coco', tmp_path/'coco.json', '--out', tmp_path/'m2',
            '--strategy', 'bogus', '--quiet')
    assert r.returncode == 2 and 'strategy must be one of' in r.stderr
