"The iNaturalist close-ups: loading a mapped iNat file, cutting it, mixing its items into crop training."
import json, logging
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from iwildcam_nb.core import InputError
from iwildcam_nb.items import INAT, inat_folder, inat_items, load_inat, mix_items, read_crops
from iwildcam_nb.crops import make_crops
from iwildcam_nb.pipeline import Inputs, RunConfig, sample_inputs

def _inat_set(root:Path, n:int=4, bbox:bool=True)->Path:
    "A tiny mapped iNat file laid out as iWildCam ships it: metadata/ and inaturalist_2018/ side by side."
    (root/'metadata').mkdir(parents=True)
    ims, anns = [], []
    for k in range(n):
        fn = f'train_val_images/Mammalia/X/{k}.jpg'
        (root/'inaturalist_2018'/fn).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 60, 3), 40*k, np.uint8)).save(root/'inaturalist_2018'/fn)
        ims.append(dict(id=100+k, file_name=fn, width=60, height=40))
        anns.append(dict(id=k, image_id=100+k, category_id=[3, 10, 50, 3][k % 4], **({'bbox': [6, 4, 30, 20]}
                                                                                    if bbox else {})))
    f = root/'metadata'/'inaturalist_2018_to_iwildcam_train.json'
    f.write_text(json.dumps(dict(images=ims, annotations=anns, categories=[dict(id=c, name=str(c))
                                                                          for c in (3, 10, 50)])))
    return f

def test_load_inat_boxes_and_layout(tmp_path):
    f = _inat_set(tmp_path)
    assert inat_folder(f) == tmp_path/'inaturalist_2018'
    d = load_inat(f)
    assert len(d) == 4 and set(d.source) == {INAT} and d.image_id.str.startswith('inaturalist_2018/').all()
    assert np.allclose(d[['x', 'y', 'w', 'h']].iloc[0], [0.1, 0.1, 0.5, 0.5]) # pixels -> normalized
    whole = load_inat(_inat_set(tmp_path/'b', bbox=False))
    assert (whole[['x', 'y', 'w', 'h']].to_numpy() == [0, 0, 1, 1]).all()

def test_load_inat_refuses_and_skips(tmp_path, caplog):
    f = _inat_set(tmp_path)
    d = json.loads(f.read_text())
    with pytest.raises(InputError, match='folder of the photos'): load_inat(f, tmp_path/'nowhere')
    f.write_text(json.dumps({**d, 'images': [{k: v for k, v in im.items() if k != 'height'} for im in d['images']]}))
    with pytest.raises(InputError, match='width/height'): load_inat(f)
    f.write_text(json.dumps({**d, 'annotations': []}))
    with pytest.raises(InputError, match='annotations'): load_inat(f)
    (tmp_path/'inaturalist_2018'/d['images'][1]['file_name']).unlink()
    f.write_text(json.dumps(d))
    with caplog.at_level(logging.WARNING, 'iwildcam_nb'): got = load_inat(f)
    assert len(got) == 3 and '1.jpg: photo not found: skipped' in caplog.text

def test_cut_items_and_mix(tmp_path):
    f = _inat_set(tmp_path)
    make_crops(load_inat(f), inat_folder(f), tmp_path/'cut', conf=0, size=32, n_workers=0, show_progress=False)
    ii = inat_items(read_crops(tmp_path/'cut'), tmp_path/'cut', [0, 3, 10])
    assert sorted(ii.category_id) == [3, 3, 10] # class 50 is not in the vocabulary
    assert max(Image.open(ii.path[0]).size) == 32 and not ii.is_valid.any()
    cam = pd.DataFrame({'path': 'x', 'category_id': [3]*8 + [10]*2, 'is_valid': [False]*8 + [True]*2})
    m = mix_items(cam, ii, 0.25, seed=1)
    assert (m.source == INAT).sum() == 2 and set(m.category_id[m.source == INAT]) == {3, 10} # by class in turn
    assert m.is_valid.sum() == 2 and (mix_items(cam, ii, 0).source == 'camera').all()

def test_inputs_and_config(tmp_path):
    two = Inputs('a', 'b', 'c', 'd', 'e', inat=['m/inaturalist_2017_to_iwildcam_train.json', 'm/x.json'],
                 inat_images=['p', 'q'])
    assert two.inat_pairs() == [(Path('m/inaturalist_2017_to_iwildcam_train.json'), Path('p')),
                                (Path('m/x.json'), Path('q'))]
    assert Inputs('a', 'b', 'c', 'd', 'e').inat_pairs() == []
    with pytest.raises(InputError, match='inat_ratio'): RunConfig(inat_ratio=-0.5)
    inp = sample_inputs(tmp_path)
    assert inp.inat == tmp_path/'metadata'/'inaturalist_2017_to_iwildcam_train.json'
    assert inp.inat_pairs()[0][1] == tmp_path/'inaturalist_2017'
