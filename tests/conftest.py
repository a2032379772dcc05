"""Shared pytest fixtures: where the real data in ../shared lives, and a clean offline environment."""
import os
from pathlib import Path
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get('IWILDCAM_SHARED_DATA', ROOT.parent/'shared'/'data'))

def shared_dir(name):
    "Folder `name` under ../shared/data, or skip the test cleanly when it is absent."
    d = SHARED_DATA/name
    if not d.is_dir(): pytest.skip(f'{d} not found (real test data lives in ../shared, outside the repo)')
    return d

@pytest.fixture
def speciesnet_dir(): return shared_dir('speciesnet_test_images')

@pytest.fixture
def fullres_dir(): return shared_dir('fullres_cct')

@pytest.fixture
def ena24_dir(): return shared_dir('ena24_small')
